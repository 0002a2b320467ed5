"""The Train tab's data side: choose data (dialog or drop), run the pre-flight check, show it.

Also the size estimate and the speed probe. A mixin of :class:`studio.train.panel.TrainingPanel`
(it uses the panel's ``form``, ``view``, ``bridge`` and ``w``).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog

from studio.enginelink import eng
from studio.train.control import ACTIVE
from studio.train.runs import (
    PRESETS,
    SKIPPED,
    memory_estimate,
    num_parameters,
    probe_speed,
    run_estimate,
    size,
)

log = logging.getLogger(__name__)


def esc(text: Any) -> str:
    """``text`` safe inside the panel's rich-text labels."""
    return html.escape(str(text), quote=False)


class DataChecks:
    """Data choice, pre-flight report, estimates and the speed probe."""

    def _settings_changed(self) -> None:
        self.update_estimate()
        self.update_controls()
        if self.form.data_path.text().strip() and self.state not in ACTIVE:
            self._recheck.start()

    def _check_later(self) -> None:
        if not asyncio.get_event_loop().is_closed():
            self.w.spawn(self.check_data())

    def _key(self) -> str | None:
        try:
            mcfg, tcfg = self.form.model_config(), self.form.train_config()
        except ValueError:
            return None
        path = self.form.data_path.text().strip()
        return json.dumps([path, mcfg.to_dict(), tcfg.data_options().to_dict()], sort_keys=True)

    def update_estimate(self) -> None:
        """Parameters, measured time per step, total time and memory for the chosen settings."""
        try:
            mcfg = self.form.model_config()
        except ValueError as exc:
            self.form.estimate.setText(f"<span style='color:#c0392b'>{exc}</span>")
            return
        batch = self.form.batch.value()
        params = num_parameters(mcfg)
        memory = size(memory_estimate(mcfg, batch, params))
        text = f"{params / 1e6:.2f}M parameters \u00b7 memory \u2248 {memory} (estimate)"
        speed = self.speeds.get(self._speed_key(mcfg, batch))
        est = self.run_time()
        if speed is not None and not speed.ok:
            text += "<br>time: too large to probe on this machine"
        elif est is not None:
            text += (
                f"<br>time {esc(est.text())}, from {speed.step_s * 1000:.0f} ms/step measured here; "
                "longer while other programs use the processor"
            )
        elif speed is None:
            text += "<br>time: press \u201cMeasure speed\u201d"
        self.form.estimate.setText(text)

    def run_time(self) -> Any:
        """The :class:`~studio.train.runs.RunEstimate` of the current settings, None if not measured."""
        try:
            mcfg, tcfg = self.form.model_config(), self.form.train_config()
        except ValueError:
            return None
        speed = self.speeds.get(self._speed_key(mcfg, tcfg.batch_size))
        if speed is None or not speed.ok:
            return None
        val = self.report.val_items if self.report is not None and self.report.ok else None
        return run_estimate(speed, tcfg, num_parameters(mcfg), val)

    @staticmethod
    def _speed_key(mcfg: Any, batch: int) -> str:
        return json.dumps([mcfg.to_dict(), batch], sort_keys=True)

    async def measure_speed(self) -> dict[str, float]:
        """Probe every size preset (or the model to fine-tune) on the engine thread."""
        batch = self.form.batch.value()
        try:
            base = self.form.model_config()
        except ValueError as exc:
            self.form.speed.setText(f"cannot measure: {exc}")
            return {}
        if self.form.is_finetune():
            configs = {"selected": base}
        else:
            configs = {
                n: base.replace(d_model=p.d_model, n_layers=p.n_layers, n_heads=p.n_heads)
                for n, p in PRESETS.items()
            }

        def work(token: Any) -> dict[str, float]:
            return {n: probe_speed(c, batch, token) for n, c in configs.items()}

        self.form.speed.setText("measuring on the engine thread\u2026")
        result = await self.bridge.submit("probe", "measure training speed", work)
        if not result:
            self.form.speed.setText("measurement cancelled")
            return {}
        for n, c in configs.items():
            self.speeds[self._speed_key(c, batch)] = result.get(n, SKIPPED)
        parts = [
            f"{n} {s.step_s * 1000:.0f} ms" if s.ok else f"{n} not probed (too large to try here)"
            for n, s in result.items()
        ]
        self.form.speed.setText(f"per step at batch {batch}, measured here: " + ", ".join(parts))
        self.update_estimate()
        return result

    # ------------------------------------------------------------------ data
    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Training data folder")
        if path:
            self.set_data(path)

    def _browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Training data file",
            "",
            "All files (*);;Arrays (*.npy *.npz *.gz *ubyte);;Text (*.txt *.md *.csv *.jsonl)",
        )
        if path:
            self.set_data(path)

    def set_data(self, path: str) -> None:
        """Use ``path`` as the training data and check it."""
        self.form.data_path.setText(path)
        self._settings_changed()

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Accept a dropped folder or file."""
        if event.mimeData().hasUrls() and self.state not in ACTIVE:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        """A dropped folder or file becomes the training data."""
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.set_data(paths[0])

    async def check_data(self, path: str | None = None) -> Any:
        """Run the pre-flight check on the engine thread and show its report."""
        if path is not None:
            self.form.data_path.setText(path)
        path = self.form.data_path.text().strip()
        self._recheck.stop()
        if not path:
            self.report, self.report_key = None, None
            self.update_controls()
            return None
        try:
            mcfg, options = self.form.model_config(), self.form.train_config().data_options()
        except ValueError as exc:
            self.form.report_summary.setText(f"<span style='color:#c0392b'>{exc}</span>")
            return None
        key = self._key()
        # a new BPE text model: learn its vocabulary from the training split first (same job)
        vocab_key = self.form.vocabulary_key() if self.form.needs_vocabulary() else None
        vocab_size = self.form.vocab_size.value()
        self._check_serial += 1
        serial = self._check_serial
        self.state = "checking" if self.state == "idle" else self.state
        self.form.report_summary.setText(
            f"Learning a {vocab_size:,}-entry vocabulary from the training split of {esc(path)}, "
            "then checking the data\u2026"
            if vocab_key is not None
            else f"Checking {path}\u2026"
        )
        self.update_controls()

        def work(_token: Any) -> tuple[Any, Any]:
            learned, cfg = None, mcfg
            if vocab_key is not None:
                learned = eng.learn_vocabulary(path, vocab_size, options)
                vocab = learned.tokenizer
                cfg = mcfg.replace(num_classes=vocab.vocab_size, vocabulary=vocab)
            return learned, eng.preflight(path, cfg, options)

        job = self.bridge.submit("preflight", f"check data {Path(path).name}", work)
        error = learned = None
        try:
            learned, report = await job
        except Exception as exc:  # noqa: BLE001 - a missing path or unreadable folder: shown in the panel
            report, error = None, str(exc)
        if serial != self._check_serial:  # a newer check superseded this one
            return report
        if learned is not None:
            self.form.set_learned_vocabulary(vocab_key, learned)
            mcfg, key = self.form.model_config(), self._key()  # the model now has that vocabulary
        if self.state == "checking":
            self.state = "idle"
        self.report, self.report_key, self.report_error = report, key, error
        self.show_report(report, mcfg, error)
        self.update_controls()
        return report

    def show_report(self, report: Any, mcfg: Any, error: str | None = None) -> None:
        """Warnings first, then counts, skipped files with reasons, statistics and 16+ preview items.

        The same content as ``prime train --dry-run``; every file-derived string is HTML-escaped.
        """
        f = self.form
        f.skipped.clear()
        f.drop_flat_now.hide()
        if report is None:
            f.report_summary.setText(f"<span style='color:#c0392b'>Cannot read the data: {esc(error)}</span>")
            f.stats.setText("")
            return
        parts = []
        if not report.ok:
            parts.append(f"<span style='color:#c0392b'><b>Cannot train:</b> {esc(report.problem)}</span>")
        for w in report.warnings:
            parts.append(f"<span style='color:#b9770e'><b>Warning:</b> {esc(w)}</span>")
        parts.append(esc(report.target_line()))
        parts.append(esc(report.counts_line()))
        if report.skipped:
            parts.append("skipped: " + esc(", ".join(report.skipped_lines())))
        f.report_summary.setText("<br>".join(parts))
        f.drop_flat_now.setVisible(bool(report.flat_items) and not f.drop_flat.isChecked())
        f.drop_flat_now.setText(f"Drop the {report.flat_items} flat items")
        for s in report.skipped:
            f.skipped.addItem(f"{s.path} \u2014 {s.reason}" + (f" ({s.detail})" if s.detail else ""))
        if report.flat_sources and not report.flat_dropped:
            for src in report.flat_sources:
                f.skipped.addItem(
                    f"{src} \u2014 flat (kept; tick \u201cDrop flat items\u201d to leave it out)"
                )
        if f.skipped.count() == 0:
            f.skipped.addItem("none")
        rows = "".join(
            f"<tr><td style='padding-right:8px'>{esc(k)}</td><td>{esc(v)}</td></tr>"
            for k, v in report.stats_rows()
        )
        f.stats.setText(f"<table>{rows}</table>" if rows else "")
        if self.state not in ACTIVE:
            self.view.show_tokens(
                report.preview_tokens,
                mcfg,
                report.preview_title() if len(report.preview_tokens) else "Data preview: nothing to show",
                tuple(report.preview_text),
                tuple(report.preview_sources),
            )
