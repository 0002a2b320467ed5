"""The job queue: what the engine thread is doing and what waits; reorder and cancel.

Each row says what the job is and its key parameters (from the job's ``meta``: model, samples x
steps, strategy and seed of a generation; output and steps of a training run). The studio's own
internal jobs (the start-up warm-up, the probabilities behind the hover text), marked
``meta["internal"]``, are not listed: the user did not ask for them and cannot act on them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from studio.bridge import RUNNING, Bridge

JOB_ROLE = Qt.ItemDataRole.UserRole


def is_internal(job: Any) -> bool:
    """True for the studio's own jobs that the queue does not list."""
    return bool(job.meta.get("internal"))


def job_parameters(job: Any) -> str:
    """The key parameters of a job in one line ("" when it has none to show).

    What the label already says (the model, samples x steps, a training run's output) is left out.
    """
    meta = job.meta
    request = meta.get("request")
    parts: list[str] = []
    if meta.get("model") and f"({meta['model']})" not in job.label:
        parts.append(str(meta["model"]))
    if request is not None:
        size = f"{request.num_samples}\u00d7{request.steps}"
        parts.append(
            f"{request.num_samples} samples \u00d7 {request.steps} steps" if size not in job.label else ""
        )
        strategy = getattr(request, "strategy", "")
        if strategy:
            parts.append(strategy)
        parts.append(f"seed {request.seed}")
        if meta.get("branch_step") is not None:
            parts.append(f"from step {meta['branch_step']}")
    if meta.get("out") and str(meta["out"]) not in job.label:
        parts.append(f"\u2192 {meta['out']}")
    if meta.get("steps"):
        parts.append(f"{meta['steps']} steps")
    return "  \u00b7  ".join(p for p in parts if p)


def job_text(job: Any) -> str:
    """A queue row: label, status (and progress), then the parameters on a second line."""
    text = f"{job.label}  \u00b7  {job.status}"
    if job.status == RUNNING and job.progress:
        text += f" {job.progress * 100:.0f}%"
    params = job_parameters(job)
    return f"{text}\n    {params}" if params else text


class QueuePanel(QWidget):
    """Lists ``bridge.jobs()`` (running first), refreshed on change and while running."""

    def __init__(self, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.list = QListWidget()
        self.up = QPushButton("\u25b2")
        self.up.setToolTip("Run earlier")
        self.down = QPushButton("\u25bc")
        self.down.setToolTip("Run later")
        self.cancel = QPushButton("Cancel job")
        self.up.clicked.connect(lambda: self._move(-1))
        self.down.clicked.connect(lambda: self._move(1))
        self.cancel.clicked.connect(self._cancel)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.up)
        bar.addWidget(self.down)
        bar.addWidget(self.cancel, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addLayout(bar)
        self.timer = QTimer(self)
        self.timer.setInterval(250)
        self.timer.timeout.connect(self.refresh)
        bridge.queue_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Redraw the list from the bridge."""
        jobs = [j for j in self.bridge.jobs() if not is_internal(j)]
        selected = self._selected()
        self.list.clear()
        for job in jobs:
            item = QListWidgetItem(job_text(job))
            item.setToolTip(job_text(job))
            item.setData(JOB_ROLE, job.id)
            self.list.addItem(item)
            if selected is not None and job.id == selected:
                self.list.setCurrentItem(item)
        if not jobs:
            self.list.addItem(QListWidgetItem("idle \u2014 no jobs"))
        running = any(j.status == RUNNING for j in jobs)
        if running and not self.timer.isActive():
            self.timer.start()
        elif not running:
            self.timer.stop()

    def _selected(self) -> int | None:
        item = self.list.currentItem()
        return item.data(JOB_ROLE) if item is not None else None

    def _job(self):
        selected = self._selected()
        return next((j for j in self.bridge.jobs() if j.id == selected), None)

    def _move(self, offset: int) -> None:
        job = self._job()
        if job is not None:
            self.bridge.move(job, offset)

    def _cancel(self) -> None:
        job = self._job()
        if job is not None:
            self.bridge.cancel(job)
