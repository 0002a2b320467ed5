"""The Train tab's run control: start, pause, resume, stop-and-save, events, sharing the engine.

Jobs run one at a time on the engine thread. So that a generation does not wait for a whole
training run, the panel yields: when a generate/branch/load job is queued behind a running
training job, training stops at the next step with a checkpoint, the queued jobs run, and the
training job is queued again with ``resume=True`` (same data order and random state). Pause is
the same mechanism under the user's control. A mixin of
:class:`studio.train.panel.TrainingPanel`.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import time
from typing import Any

from PySide6.QtCore import QEvent, QObject

from studio.enginelink import eng
from studio.train.runs import (
    Intent,
    RunRecord,
    duration,
    model_name_ok,
    new_run,
    studio_words,
    train_work,
    unique_name,
)

log = logging.getLogger(__name__)

YIELD_FOR = ("generate", "branch", "load")  # queued job kinds that pause a running training job
ACTIVE = ("running", "pausing", "yielding", "stopping", "waiting")


class RunControl:
    """Start, pause, resume, stop; follow the training job's events; yield to queued jobs."""

    # ------------------------------------------------------------------ controls
    def start_blocker(self) -> str | None:
        """Why a new run cannot start now, or None."""
        if self.state in ACTIVE or self.state == "paused":
            return None if self.state == "paused" else ""
        problem = model_name_ok(self.form.name.text().strip())
        if problem:
            return problem
        taken = self._library_names()
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
        if self.report_key != self._key() or self.form.needs_vocabulary():
            return "Settings changed: checking the data again\u2026"
        if not self.report.ok:
            return f"No usable data: {self.report.problem}"
        return None

    def _library_names(self, fresh: bool = False) -> set[str]:
        """Names in the library, re-read at most every 2 s (every keystroke asks)."""
        now = time.monotonic()
        cached = getattr(self, "_names_cache", None)
        if fresh or cached is None or now - cached[0] > 2.0:
            cached = (now, {e.name for e in eng.list_models()})
            self._names_cache = cached
        return cached[1]

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
            self.form.name.text().strip(),
            self.form.data_path.text().strip(),
            self.form.model_source(),
            tcfg,
            vocabulary=None if self.form.is_finetune() else self.form.model_config().vocabulary,
        )
        record.save(status="running")
        self.record = record
        self.view.open_model.hide()
        self.view.reset(tcfg.steps)
        self.view.say(f"run {record.id}: {record.name}, {tcfg.steps} steps, data {record.data}")
        est = self.run_time()
        if est is not None:  # the estimate stays in view until the first step's ETA replaces it
            self.view.say(f"expected {est.text()}")
            self.view.rate.setText(f"expected {est.text()}")
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
        if self.state in ("running", "pausing", "yielding", "waiting"):
            self.state = "stopping"
            self.view.status.setText("Stopping: checkpoint, then the model is saved into the library\u2026")
            job, record = self.job, self.record
            if job is not None and job.status == "running":
                self.intent.value = "stop"
                job.cancel()
            elif record is not None and record.checkpoint_path.exists():
                self.intent.value = "finish"  # when it runs it only loads the checkpoint and saves
            elif job is not None:
                job.cancel()  # queued and nothing trained yet: drop it
            else:
                self.intent.value = "drop"  # about to be queued: do not
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

    async def generate_with_saved(self) -> Any:
        """Load the model the last run saved and show the Generate tab."""
        if not self.saved_model:
            return None
        handle = await self.w.session.load_model(self.saved_model)
        self.w.tabs.setCurrentIndex(0)
        return handle

    def _launch(self, resume: bool, data: Any, finish: bool = False) -> asyncio.Task:
        """Start following a training job (the state changes now, not when the task first runs)."""
        self.state = "waiting"
        if self.record is not None:
            self.form.show_record(self.record)  # a resumed run shows its own settings, not the form's
        self.intent = Intent("finish" if finish else "stop")
        self.update_controls()
        return self.w.spawn(self._drive(resume, data))

    async def _drive(self, resume: bool, data: Any) -> Any:
        """One training job for ``self.record``: follow its events, then record how it ended."""
        record = self.record
        intent = self.intent
        if intent.value == "drop":
            return self._ended(record, None, data)
        job = self.bridge.submit(
            "train",
            f"train \u2192 {record.name}",
            lambda token: train_work(record, data, token, intent, resume),
        )
        self.job = job
        self._steps_this_job = 0
        ahead = len(self.bridge.jobs()) - 1
        if job.status == "queued" and ahead > 0:
            self.view.status.setText(
                f"Training paused at its checkpoint while {ahead} queued job(s) run; it continues by itself."
                if resume
                else f"Queued: training starts after the {ahead} job(s) ahead of it."
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
        elif ev.kind == "done" or (ev.kind == "cancelled" and self.intent.value == "stop"):
            v.say(ev.message)  # (a pause or a yield says so itself, without the CLI's --resume hint)

    def _ended(self, record: RunRecord, outcome: Any, data: Any) -> Any:
        v = self.view
        if outcome is None:  # dropped from the queue before it ran
            self.state = "paused" if record.checkpoint_path.exists() else "idle"
            record.save(status="paused" if self.state == "paused" else "stopped")
            v.status.setText("The training job was cancelled before it ran.")
            self.update_controls()
            return None
        s = outcome.summary
        if outcome.intent != "yield":  # the run stands still now: no ETA
            v.rate.setText(
                f"{s.steps_done} of {s.steps} steps \u00b7 {duration(s.wall_s)} of training \u00b7 "
                f"{s.tokens_seen:,} tokens seen"
            )
        if outcome.library_path:
            self._show_in_library(outcome.library_path)
            self.saved_model = outcome.library_path
            v.open_model.show()
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
            self.form.name.setText(unique_name(record.name, self._library_names(fresh=True)))
        self.update_estimate()
        self.update_controls()
        return outcome

    def _show_in_library(self, path: str) -> None:
        """Refresh the library and select the model a run just saved."""
        from studio.library import PATH_ROLE

        library = self.w.library
        library.refresh()
        for i in range(library.list.count()):
            if library.list.item(i).data(PATH_ROLE) == path:
                library.list.setCurrentRow(i)
                break

    def _failed(self, record: RunRecord, exc: BaseException) -> None:
        resumable = record.checkpoint_path.exists()
        record.save(status="paused" if resumable else "failed", message=str(exc))
        self.state, self.record = "idle", None
        text = studio_words(f"Training stopped: {exc}")  # Train-tab actions, not CLI flags
        if resumable:
            text += " \u2014 the last checkpoint is intact: fix the cause and resume it above, or discard it."
        self.view.status.setText(f"<span style='color:#c0392b'>{html.escape(text, quote=False)}</span>")
        self.view.say(text)
        self.w.flash(text, 10000)
        log.warning("training %s failed: %s", record.id, exc)
        self.update_controls()
        self.find_unfinished()  # a resumable run is offered in the banner (Resume / Discard)
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
            if getattr(self.w, "settings", None) is not None:
                self.w.settings.set_json("train/values", self.form.values())  # synced by the window
            if self.job is not None and self.record is not None:
                self.intent.value = "pause"
                self.record.save(status="paused", message="the studio was closed during training")
        return False
