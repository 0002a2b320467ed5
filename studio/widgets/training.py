"""The Train tab: pick a folder, check it, watch the model learn, get a new model in the library.

Settings live in :mod:`studio.widgets.training_form`, the live view in
:mod:`studio.widgets.training_view`, run records and engine-thread work in
:mod:`studio.widgets.training_runs`. This module is the controller: every engine call is a
bridge job (preflight, speed probe, training), awaited on the GUI loop.

Jobs run one at a time on the engine thread. So that a generation does not wait for a whole
training run, the panel yields: when a generate/branch/load job is queued behind a running
training job, training stops at the next step with a checkpoint, the queued jobs run, and the
training job is queued again with ``resume=True`` (same data order and random state). Pause is
the same mechanism under the user's control.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QFileDialog, QScrollArea, QSplitter, QWidget

from studio import panels
from studio.enginelink import eng
from studio.widgets.training_form import TrainingForm
from studio.widgets.training_runs import (
    PRESETS,
    Intent,
    RunRecord,
    duration,
    memory_estimate,
    model_name_ok,
    new_run,
    num_parameters,
    probe_step_seconds,
    size,
    train_work,
    unfinished_runs,
    unique_name,
)
from studio.widgets.training_view import TrainingView

log = logging.getLogger(__name__)

YIELD_FOR = ("generate", "branch", "load")  # queued job kinds that pause a running training job
ACTIVE = ("running", "pausing", "yielding", "stopping", "waiting")


class TrainingPanel(QSplitter):
    """Settings on the left, live training on the right."""

    def __init__(self, window: Any) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.setObjectName("trainingPanel")
        self.w = window
        self.bridge = window.bridge
        self.form = TrainingForm()
        self.view = TrainingView()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.form)
        scroll.setMinimumWidth(340)
        self.addWidget(scroll)
        self.addWidget(self.view)
        self.setStretchFactor(1, 1)
        self.setSizes([380, 900])
        self.setAcceptDrops(True)

        self.state = "idle"  # idle | checking | running | pausing | paused | yielding | stopping | waiting
        self.report: Any = None
        self.report_key: str | None = None
        self.report_error: str | None = None
        self._check_serial = 0
        self.record: RunRecord | None = None
        self.job: Any = None
        self.intent = Intent()
        self.speeds: dict[str, float] = {}
        self.pending: list[RunRecord] = []
        self._steps_this_job = 0

        self._recheck = QTimer(self)
        self._recheck.setSingleShot(True)
        self._recheck.setInterval(400)
        self._recheck.timeout.connect(self._check_later)

        f, v = self.form, self.view
        f.model_changed.connect(self._settings_changed)
        f.data_options_changed.connect(self._settings_changed)
        f.data_path.editingFinished.connect(self._settings_changed)
        f.name.textChanged.connect(lambda _t: self.update_controls())
        f.browse_folder.connect(self._browse_folder)
        f.browse_file.connect(self._browse_file)
        f.speed_requested.connect(lambda: self.w.spawn(self.measure_speed()))
        v.start.clicked.connect(self.start)
        v.pause.clicked.connect(self.pause)
        v.resume.clicked.connect(self.resume)
        v.cancel.clicked.connect(self.stop)
        v.banner_resume.clicked.connect(self.resume_unfinished)
        v.banner_discard.clicked.connect(self.discard_unfinished)
        self.bridge.queue_changed.connect(self._maybe_yield)
        library = getattr(window, "library", None)
        if library is not None:
            library.list.currentItemChanged.connect(lambda *_: self.sync_selected())
        window.installEventFilter(self)
        self.sync_selected()
        self.update_estimate()
        self.update_controls()
        self.find_unfinished()

    # ------------------------------------------------------------------ selection and settings
    def sync_selected(self) -> None:
        """Follow the model selected in the library (the model to fine-tune)."""
        from studio.widgets.library import NAME_ROLE, PATH_ROLE

        item = self.w.library.list.currentItem() if getattr(self.w, "library", None) else None
        name = path = config = None
        if item is not None and item.data(PATH_ROLE):
            try:
                config = eng.read_model_info(item.data(PATH_ROLE)).config
                name, path = item.data(NAME_ROLE), item.data(PATH_ROLE)
            except Exception:  # noqa: BLE001 - a broken file cannot be fine-tuned; say nothing here
                config = None
        self.form.set_selected(name, path, config)

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
        batch, steps = self.form.batch.value(), self.form.steps.value()
        params = num_parameters(mcfg)
        memory = size(memory_estimate(mcfg, batch, params))
        text = f"{params / 1e6:.2f}M parameters \u00b7 memory \u2248 {memory} (estimate)"
        key = self._speed_key(mcfg, batch)
        if key in self.speeds:
            per = self.speeds[key]
            text += (
                f"<br>measured {per * 1000:.0f} ms/step \u2192 {steps} steps \u2248 {duration(per * steps)}"
            )
        else:
            text += "<br>time: press \u201cMeasure speed\u201d"
        self.form.estimate.setText(text)

    @staticmethod
    def _speed_key(mcfg: Any, batch: int) -> str:
        return json.dumps([mcfg.to_dict(), batch], sort_keys=True)

    async def measure_speed(self) -> dict[str, float]:
        """Probe every size preset (or the model to fine-tune) on the engine thread."""
        batch = self.form.batch.value()
        if self.form.is_finetune():
            configs = {"selected": self.form.model_config()}
        else:
            base = self.form.model_config()
            configs = {
                n: base.replace(d_model=p.d_model, n_layers=p.n_layers, n_heads=p.n_heads)
                for n, p in PRESETS.items()
            }

        def work(token: Any) -> dict[str, float]:
            return {n: probe_step_seconds(c, batch, token) for n, c in configs.items()}

        self.form.speed.setText("measuring on the engine thread\u2026")
        result = await self.bridge.submit("probe", "measure training speed", work)
        if not result:
            self.form.speed.setText("measurement cancelled")
            return {}
        for n, c in configs.items():
            self.speeds[self._speed_key(c, batch)] = result[n]
        parts = [f"{n} {s * 1000:.0f} ms" for n, s in result.items()]
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
            self, "Training data file", "", "Text (*.txt *.md);;All files (*)"
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
        self._check_serial += 1
        serial = self._check_serial
        self.state = "checking" if self.state == "idle" else self.state
        self.form.report_summary.setText(f"Checking {path}\u2026")
        self.update_controls()
        job = self.bridge.submit(
            "preflight", f"check data {Path(path).name}", lambda _t: eng.preflight(path, mcfg, options)
        )
        error = None
        try:
            report = await job
        except Exception as exc:  # noqa: BLE001 - a missing path or unreadable folder: shown in the panel
            report, error = None, str(exc)
        if serial != self._check_serial:  # a newer check superseded this one
            return report
        if self.state == "checking":
            self.state = "idle"
        self.report, self.report_key, self.report_error = report, key, error
        self.show_report(report, mcfg, error)
        self.update_controls()
        return report

    def show_report(self, report: Any, mcfg: Any, error: str | None = None) -> None:
        """Counts, skipped files with reasons, statistics and the preprocessed preview."""
        f = self.form
        f.skipped.clear()
        if report is None:
            f.report_summary.setText(f"<span style='color:#c0392b'>Cannot read the data: {error}</span>")
            f.stats.setText("")
            return
        head = (
            f"<b>{report.files_found}</b> files found, <b>{report.files_used}</b> used, "
            f"<b>{len(report.skipped)}</b> skipped \u00b7 <b>{report.items}</b> items "
            f"({report.train_items} train, {report.val_items} validation)"
        )
        if report.skipped:
            head += "<br>skipped: " + ", ".join(
                f"{n} {r}" for r, n in sorted(report.skipped_by_reason.items())
            )
        if not report.ok:
            head += f"<br><span style='color:#c0392b'><b>Cannot train:</b> {report.problem}</span>"
        f.report_summary.setText(head)
        for s in report.skipped:
            f.skipped.addItem(f"{s.path} \u2014 {s.reason}" + (f" ({s.detail})" if s.detail else ""))
        if not report.skipped:
            f.skipped.addItem("none")
        f.stats.setText("<br>".join(f"{k}: {v}" for k, v in report.stats.items()))
        if self.state not in ACTIVE:
            self.view.show_tokens(
                report.preview_tokens,
                mcfg,
                f"Data preview: {len(report.preview_tokens)} items as the model will see them",
                tuple(report.preview_text),
            )

    # ------------------------------------------------------------------ controls
    def start_blocker(self) -> str | None:
        """Why a new run cannot start now, or None."""
        if self.state in ACTIVE or self.state == "paused":
            return None if self.state == "paused" else ""
        problem = model_name_ok(self.form.name.text().strip())
        if problem:
            return problem
        taken = {e.name for e in eng.list_models()}
        if self.form.name.text().strip() in taken:
            return (
                f"the name {self.form.name.text().strip()!r} is already used in the library; choose another"
            )
        try:
            self.form.model_config()
            self.form.train_config()
        except ValueError as exc:
            return str(exc)
        if not self.form.data_path.text().strip():
            return "Choose a data folder or file (or drop it on this tab) to see its report."
        if self.state == "checking":
            return "Checking the data\u2026"
        if self.report is None:
            return (
                f"The data cannot be used: {self.report_error}"
                if self.report_error
                else "Check the data first."
            )
        if self.report_key != self._key():
            return "Settings changed: checking the data again\u2026"
        if not self.report.ok:
            return f"No usable data: {self.report.problem}"
        return None

    def update_controls(self) -> None:
        """Enable what can be done now and say why Start is not possible."""
        v = self.view
        blocker = self.start_blocker()
        v.start.setEnabled(self.state in ("idle", "checking") and blocker is None)
        v.pause.setEnabled(self.state == "running")
        v.resume.setEnabled(self.state == "paused")
        v.cancel.setEnabled(self.state in ("running", "paused", "yielding", "waiting"))
        v.set_reason(blocker if self.state in ("idle", "checking") else None)
        self.form.lock(self.state in ACTIVE or self.state == "paused")

    # ------------------------------------------------------------------ run
    def start(self) -> asyncio.Task | None:
        """Start a new run with the checked data (returns the task that follows it)."""
        if self.start_blocker() is not None or self.state not in ("idle", "checking"):
            return None
        tcfg = self.form.train_config()
        record = new_run(
            self.form.name.text().strip(), self.form.data_path.text().strip(), self.form.model_source(), tcfg
        )
        record.save(status="running")
        self.record = record
        self.view.reset(tcfg.steps)
        self.view.say(f"run {record.id}: {record.name}, {tcfg.steps} steps, data {record.data}")
        return self._launch(resume=False, data=self.report)

    def pause(self) -> None:
        """Stop at the next step with a checkpoint; Resume continues from it."""
        if self.state == "running" and self.job is not None:
            self.intent.value = "pause"
            self.state = "pausing"
            self.view.status.setText("Pausing: writing a checkpoint after the current step\u2026")
            self.job.cancel()
            self.update_controls()

    def resume(self) -> asyncio.Task | None:
        """Continue a paused run from its checkpoint."""
        if self.state != "paused" or self.record is None:
            return None
        return self._launch(resume=self.record.checkpoint_path.exists(), data=self._data_for(self.record))

    def stop(self) -> asyncio.Task | None:
        """Stop now and save the model so far (with its card) into the library."""
        if self.state in ("running", "yielding", "waiting") and self.job is not None:
            self.intent.value = "stop"
            self.state = "stopping"
            self.view.status.setText("Stopping: checkpoint, then the model is saved into the library\u2026")
            if self.job.status == "running":
                self.job.cancel()
            else:  # queued: when it runs it only loads the checkpoint and saves the model
                self.intent.value = "finish"
            self.update_controls()
            return None
        if self.state == "paused" and self.record is not None:  # finish from the checkpoint
            return self._launch(resume=True, data=self._data_for(self.record), finish=True)
        return None

    def _data_for(self, record: RunRecord) -> Any:
        """The checked report when it belongs to this run (saves decoding the data again)."""
        if self.report is None or not self.report.ok or self.report_key is None:
            return None
        try:
            path, mcfg, options = json.loads(self.report_key)
            same = (
                path == record.data
                and mcfg == record.model_config().to_dict()
                and options == record.train().data_options().to_dict()
            )
        except Exception:  # noqa: BLE001 - decode again on the engine thread
            return None
        return self.report if same else None

    def _launch(self, resume: bool, data: Any, finish: bool = False) -> asyncio.Task:
        """Start following a training job (the state changes now, not when the task first runs)."""
        self.state = "waiting"
        self.intent = Intent("finish" if finish else "stop")
        self.update_controls()
        return self.w.spawn(self._drive(resume, data))

    async def _drive(self, resume: bool, data: Any) -> Any:
        """One training job for ``self.record``: follow its events, then record how it ended."""
        record = self.record
        intent = self.intent
        job = self.bridge.submit(
            "train",
            f"train \u2192 {record.name}",
            lambda token: _run_job(record, data, token, intent, resume),
        )
        self.job = job
        self._steps_this_job = 0
        if job.status == "queued" and len(self.bridge.jobs()) > 1:
            self.view.status.setText(
                f"Queued: training waits for {len(self.bridge.jobs()) - 1} job(s) ahead of it"
            )
        try:
            await job.wait_started()
            if self.state == "waiting":
                self.state = "running"
                self.update_controls()
            async for event in job:
                self.on_event(event)
            outcome = await job
        except Exception as exc:  # noqa: BLE001 - shown in the panel; the checkpoint stays usable
            return self._failed(record, exc)
        finally:
            self.job = None
        return self._ended(record, outcome, data)

    def on_event(self, ev: Any) -> None:
        """Show one TrainEvent (charts, progress, previews, checkpoints)."""
        v, record = self.view, self.record
        if ev.kind == "start":
            info = ev.info or {}
            resumed = info.get("resumed_from")
            v.status.setText(
                f"Training {record.name} on {info.get('device', '?')} \u00b7 "
                f"{info.get('model_parameters', 0) / 1e6:.2f}M parameters \u00b7 "
                f"{(info.get('data') or {}).get('train_items', '?')} training items"
                + (f" \u00b7 resumed from step {resumed}" if resumed else "")
            )
            v.say(f"resumed from step {resumed}" if resumed else ev.message or "started")
            for c in (v.loss_chart, v.bpd_chart, v.lr_chart):
                c.x_max = ev.steps
        elif ev.kind == "step":
            self._steps_this_job += 1
            v.loss_chart.add(ev.step, ev.loss)
            v.lr_chart.add(ev.step, ev.lr)
            v.show_step(ev)
        elif ev.kind == "eval" and ev.eval is not None:
            v.bpd_chart.add(ev.step, ev.eval.bits_per_dim)
            v.say(f"step {ev.step}: {ev.eval.line()}")
        elif ev.kind == "preview" and ev.preview is not None:
            cfg = record.model_config()
            seed = record.train_config.get("seed", 0)
            v.show_tokens(
                ev.preview, cfg, f"Samples at step {ev.step} (fixed seed {seed}, so progress is comparable)"
            )
        elif ev.kind == "checkpoint" and ev.checkpoint:
            v.checkpoints.addItem(f"step {ev.step} \u00b7 {time.strftime('%H:%M:%S')}")
            v.checkpoints.item(v.checkpoints.count() - 1).setToolTip(
                f"{ev.checkpoint}\n(each checkpoint replaces the previous one: it is what Resume continues)"
            )
            v.checkpoints.scrollToBottom()
            record.save(step=ev.step)
        elif ev.kind in ("done", "cancelled"):
            v.say(ev.message)

    def _ended(self, record: RunRecord, outcome: Any, data: Any) -> Any:
        v = self.view
        if outcome is None:  # dropped from the queue before it ran
            self.state = "paused" if record.checkpoint_path.exists() else "idle"
            record.save(status="paused" if self.state == "paused" else "stopped")
            v.status.setText("The training job was cancelled before it ran.")
            self.update_controls()
            return None
        s = outcome.summary
        if outcome.library_path:
            self.w.library.refresh()
        if not s.cancelled:
            record.save(status="done", step=s.steps_done, library_path=outcome.library_path)
            line = s.final_eval.line() if s.final_eval is not None else ""
            v.status.setText(f"Done: {outcome.library_name} is in the library, ready to generate. {line}")
            v.say(f"saved {outcome.library_name} in the library ({outcome.library_path})")
            self.state = "idle"
        elif outcome.intent == "yield":
            v.say(f"paused at step {s.steps_done} so that queued jobs can run; training continues after them")
            self.state = "yielding"
            self.update_controls()
            return self._launch(resume=record.checkpoint_path.exists(), data=data)
        elif outcome.intent == "pause":
            record.save(status="paused", step=s.steps_done)
            v.status.setText(
                f"Paused at step {s.steps_done} of {s.steps}: checkpoint saved. Resume continues from there."
            )
            v.say(f"paused at step {s.steps_done}")
            self.state = "paused"
        else:
            record.save(status="stopped", step=s.steps_done, library_path=outcome.library_path)
            if outcome.library_path:
                v.status.setText(
                    f"Stopped at step {s.steps_done} of {s.steps}: {outcome.library_name} is in the library "
                    "(its card says it stopped early)."
                )
                v.say(f"saved {outcome.library_name} in the library ({outcome.library_path})")
            else:
                v.status.setText("Stopped before the first step: nothing was saved.")
            self.state = "idle"
        if outcome.library_name:  # ready for the next run: suggest a free name
            self.form.name.setText(unique_name(record.name, {e.name for e in eng.list_models()}))
        self.update_estimate()
        self.update_controls()
        return outcome

    def _failed(self, record: RunRecord, exc: BaseException) -> None:
        resumable = record.checkpoint_path.exists()
        record.save(status="paused" if resumable else "failed", message=str(exc))
        self.state = "paused" if resumable else "idle"
        text = f"Training stopped: {exc}"
        if resumable:
            text += " \u2014 the last checkpoint is intact: fix the cause and press Resume."
        self.view.status.setText(f"<span style='color:#c0392b'>{text}</span>")
        self.view.say(text)
        self.w.flash(text, 10000)
        log.warning("training %s failed: %s", record.id, exc)
        self.update_controls()
        return None

    # ------------------------------------------------------------------ sharing the engine thread
    def _maybe_yield(self) -> None:
        job = self.job
        if job is None or self.state != "running" or job.status != "running" or self._steps_this_job < 1:
            return
        waiting = [j for j in self.bridge.jobs() if j.status == "queued" and j.kind in YIELD_FOR]
        if waiting:
            self.intent.value = "yield"
            self.state = "yielding"
            self.view.status.setText(
                f"Pausing training at a checkpoint so that \u201c{waiting[0].label}\u201d can run; "
                "training then continues from the same step by itself."
            )
            job.cancel()
            self.update_controls()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        """When the window closes during a run, make the cancel a pause (resumable next start)."""
        if obj is self.w and event.type() == QEvent.Type.Close:
            self._recheck.stop()
            if self.job is not None and self.record is not None:
                self.intent.value = "pause"
                self.record.save(status="paused", message="the studio was closed during training")
        return False

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
        from studio.widgets.training_runs import checkpoint_step

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


def _run_job(record: RunRecord, data: Any, token: Any, intent: Intent, resume: bool):
    """Engine thread: a "finish" intent loads the checkpoint and saves the model without training."""
    if intent.value == "finish":
        intent.value = "stop"
        token.cancel()
    return train_work(record, data, token, intent, resume)


def _register() -> None:
    from studio.widgets.training_selftest import self_test_train

    panels.register_panel("Train", TrainingPanel, order=50)
    panels.register_self_test("train", self_test_train)


_register()

__all__ = ["TrainingPanel", "QWidget"]
