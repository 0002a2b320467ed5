"""The Train tab: pick a folder, check it, watch the model learn, get a new model in the library.

Settings live in :mod:`studio.train.form`, the live view in
:mod:`studio.train.view`, run records and engine-thread work in
:mod:`studio.train.runs`. The panel's behaviour comes in three mixins: data checks
(:mod:`~studio.train.data`), run control and sharing the engine thread
(:mod:`~studio.train.control`), and the resume offer for interrupted runs
(:mod:`~studio.train.recover`). Every engine call is a bridge job (pre-flight, speed
probe, training) awaited on the GUI loop.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QScrollArea, QSplitter, QWidget

from studio import panels
from studio.enginelink import eng
from studio.train.control import RunControl
from studio.train.data import DataChecks
from studio.train.form import TrainingForm
from studio.train.recover import Recovery
from studio.train.runs import (
    Intent,
    RunRecord,
)
from studio.train.view import TrainingView

log = logging.getLogger(__name__)


class TrainingPanel(DataChecks, RunControl, Recovery, QSplitter):
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
        scroll.setMinimumWidth(310)
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
        self.speeds: dict[str, Any] = {}  # speed key -> runs.Speed
        self.saved_model: str | None = None  # library path of the model the last run saved
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
        v.open_model.clicked.connect(lambda: self.w.spawn(self.generate_with_saved()))
        v.banner_resume.clicked.connect(self.resume_unfinished)
        v.banner_discard.clicked.connect(self.discard_unfinished)
        self.bridge.queue_changed.connect(self._maybe_yield)
        library = getattr(window, "library", None)
        if library is not None:
            library.list.currentItemChanged.connect(lambda *_: self.sync_selected())
        window.installEventFilter(self)
        saved = window.settings.get_json("train/values") if getattr(window, "settings", None) else None
        if isinstance(saved, dict):
            self.form.restore(saved)
        self.sync_selected()
        self.update_estimate()
        self.update_controls()
        self.find_unfinished()

    # ------------------------------------------------------------------ selection and settings
    def sync_selected(self) -> None:
        """Follow the model selected in the library (the model to fine-tune)."""
        from studio.library import NAME_ROLE, PATH_ROLE

        item = self.w.library.list.currentItem() if getattr(self.w, "library", None) else None
        name = path = config = None
        if item is not None and item.data(PATH_ROLE):
            try:
                config = eng.read_model_info(item.data(PATH_ROLE)).config
                name, path = item.data(NAME_ROLE), item.data(PATH_ROLE)
            except Exception:  # noqa: BLE001 - a broken file cannot be fine-tuned; say nothing here
                config = None
        self.form.set_selected(name, path, config)


def _register() -> None:
    from studio.train.selftest import self_test_train

    panels.register_panel("Train", TrainingPanel, order=50)
    panels.register_self_test("train", self_test_train)


_register()

__all__ = ["TrainingPanel", "QWidget"]
