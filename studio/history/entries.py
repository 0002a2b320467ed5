"""The history of outputs: a tree of entries (branches are children of their parent).

Pure data (no widgets): each entry keeps the engine's result (with its trajectory, for scrubbing
and branching), the model it came from and the full settings that made it.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Entry:
    """One output: a generation, a branch, an inpaint or a comparison run."""

    id: int
    kind: str  # "generate", "branch", "inpaint", "detail", "infill", "compare"
    model: Any  # bridge.ModelHandle
    settings: dict[str, Any]
    result: Any  # engine SampleResult
    parent: int | None = None
    branch_step: int | None = None
    created: float = field(default_factory=time.time)
    files: list[Path] = field(default_factory=list)
    output: str | None = None  # name of its saved files in the outputs folder (None: not saved)
    reopened: bool = False  # read back from the outputs folder (made in an earlier session)

    @property
    def trajectory(self) -> Any:
        """The engine Trajectory of this output."""
        return self.result.trajectory

    @property
    def steps_done(self) -> int:
        """Steps actually taken (fewer than requested after a cancel)."""
        return int(self.result.steps_done)

    def title(self) -> str:
        """Short label for lists."""
        what = {
            "generate": "Sample",
            "branch": f"Branch @{self.branch_step}",
            "inpaint": "Inpaint",
            "detail": "Detail",
            "infill": "Infill",
            "compare": "Compare",
        }.get(self.kind, self.kind)
        suffix = " (cancelled)" if self.result.cancelled else ""
        if self.reopened and self.output:
            return f"#{self.id} {what} \u00b7 {self.output[:15]}{suffix}"
        return f"#{self.id} {what}{suffix}"

    def stats(self) -> dict[str, float]:
        """Mean NFE and idle steps per sample, wall time."""
        nfe = list(self.result.nfe) or [0]
        idle = list(self.result.idle_steps) or [0]
        return {
            "nfe": sum(nfe) / len(nfe),
            "idle": sum(idle) / len(idle),
            "seconds": float(self.result.seconds),
        }


class History:
    """Entries by id, in creation order, with parent links."""

    def __init__(self) -> None:
        self.entries: dict[int, Entry] = {}
        self._ids = itertools.count(1)

    def add(
        self,
        kind: str,
        model: Any,
        settings: dict[str, Any],
        result: Any,
        parent: int | None = None,
        branch_step: int | None = None,
    ) -> Entry:
        """Record a new output and return its entry."""
        entry = Entry(next(self._ids), kind, model, dict(settings), result, parent, branch_step)
        self.entries[entry.id] = entry
        return entry

    def get(self, entry_id: int) -> Entry:
        """The entry with this id (KeyError if unknown)."""
        return self.entries[entry_id]

    def by_output(self, name: str) -> Entry | None:
        """The entry whose saved files are named ``name`` (None when none is)."""
        return next((e for e in self.entries.values() if e.output == name), None)

    def children(self, entry_id: int | None) -> list[Entry]:
        """Direct children (roots for None)."""
        return [e for e in self.entries.values() if e.parent == entry_id]

    def __len__(self) -> int:
        return len(self.entries)
