"""The job queue: what the engine thread is doing and what waits; reorder and cancel."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from studio.bridge import RUNNING, Bridge

JOB_ROLE = Qt.ItemDataRole.UserRole


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
        jobs = self.bridge.jobs()
        selected = self._selected()
        self.list.clear()
        for job in jobs:
            text = f"{job.label}  \u00b7  {job.status}"
            if job.status == RUNNING and job.progress:
                text += f" {job.progress * 100:.0f}%"
            item = QListWidgetItem(text)
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
