"""The Train tab's offer to resume runs that were interrupted (a crash, a killed process, a pause).

A mixin of :class:`studio.train.panel.TrainingPanel`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from studio.train.control import ACTIVE
from studio.train.runs import (
    RunRecord,
    checkpoint_step,
    unfinished_runs,
)

log = logging.getLogger(__name__)


class Recovery:
    """Find unfinished run records at start-up and offer them in a banner."""

    # ------------------------------------------------------------------ interrupted runs
    def find_unfinished(self) -> list[RunRecord]:
        """Offer runs that were running or paused when the studio last stopped."""
        try:
            self.pending = [r for r in unfinished_runs() if self.record is None or r.id != self.record.id]
        except OSError as exc:
            self.view.say(f"cannot read earlier runs: {exc}")
            self.pending = []
        self._show_banner()
        return self.pending

    def _show_banner(self) -> None:
        v = self.view
        if not self.pending or self.state in ACTIVE or self.state == "paused":
            v.banner.hide()
            return
        r = self.pending[0]

        step = checkpoint_step(r.checkpoint_path)
        where = (
            f"checkpoint at step {step} of {r.steps}"
            if step is not None
            else "no checkpoint yet (starts again)"
        )
        more = f" (+{len(self.pending) - 1} more)" if len(self.pending) > 1 else ""
        v.banner_text.setText(
            f"<b>{r.name}</b> was interrupted ({r.status}, {r.updated}): {where}; data {r.data}{more}"
        )
        v.banner.show()

    def resume_unfinished(self) -> asyncio.Task | None:
        """Resume the first unfinished run from its checkpoint."""
        if not self.pending or self.state in ACTIVE:
            return None
        record = self.pending.pop(0)
        self.view.banner.hide()
        self.record = record
        record.save(status="running")
        self.view.reset(record.steps)
        self.view.say(f"resuming run {record.id} ({record.name})")
        return self._launch(resume=record.checkpoint_path.exists(), data=None)

    def discard_unfinished(self) -> None:
        """Do not offer the first unfinished run again (its files stay in the runs folder)."""
        if self.pending:
            record = self.pending.pop(0)
            record.save(status="discarded")
            self.view.say(f"discarded run {record.id}; its files stay in {Path(record.out).parent}")
        self._show_banner()
