"""The main window: models, queue, workspace tabs and history.

Library and queue on the left, the workspace tabs (Generate, Compare, and
panels registered in :mod:`studio.panels`, e.g. Train) in the middle, history on the right.

The window renders state and sends requests; the async work lives in :mod:`studio.workspace.session`.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio import enginelink, panels
from studio.bridge import Bridge
from studio.dialogs import HelpOverlay, show_about, show_error
from studio.history.entries import History
from studio.history.tree import HistoryPanel
from studio.library import LibraryPanel
from studio.queue import QueuePanel
from studio.settings import Settings
from studio.workspace.canvas import CanvasPanel
from studio.workspace.compare import ComparePanel
from studio.workspace.generate import GeneratePanel
from studio.workspace.session import Session, Views
from studio.workspace.textview import TextPanel
from studio.workspace.timeline import Timeline

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """Prime Studio's main window."""

    def __init__(self, bridge: Bridge, settings: Settings, outputs_dir: Path | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Prime Studio")
        self.setObjectName("PrimeStudioMainWindow")
        self.setAcceptDrops(True)
        self.bridge = bridge
        self.settings = settings
        self.history = History()
        self.outputs_dir = outputs_dir or enginelink.data_dir() / "outputs"
        self._tasks: set[asyncio.Task] = set()
        self.errors: list[BaseException] = []  # shown in dialogs; kept for tests and the self-test

        # ---------------------------------------------------------------- widgets
        self.library = LibraryPanel()
        self.queue = QueuePanel(bridge)
        self.generate_panel = GeneratePanel()
        self.canvas = CanvasPanel()
        self.text = TextPanel()
        self.timeline = Timeline()
        self.history_panel = HistoryPanel()
        self.model_status = QLabel("no model")
        # the session drives these widgets; the window is its host (bridge, history, messages)
        self.session = Session(
            self,
            Views(
                generate_panel=self.generate_panel,
                canvas=self.canvas,
                text=self.text,
                timeline=self.timeline,
                library=self.library,
                history_panel=self.history_panel,
                model_status=self.model_status,
            ),
        )
        self.compare = ComparePanel(self.session)

        self.view_stack = QStackedWidget()
        self.view_stack.addWidget(self.canvas)
        self.view_stack.addWidget(self.text)
        workspace = QWidget()
        wl = QVBoxLayout(workspace)
        wl.setContentsMargins(4, 4, 4, 4)
        wl.addWidget(self.view_stack, 1)
        wl.addWidget(self.timeline)
        self.generate_split = QSplitter(Qt.Orientation.Horizontal)
        self.generate_split.setObjectName("generateSplit")
        self.generate_split.addWidget(self.generate_panel)
        self.generate_split.addWidget(workspace)
        self.generate_split.setStretchFactor(1, 1)
        self.generate_split.setSizes([280, 900])

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.generate_split, "Generate")
        self.tabs.addTab(self.compare, "Compare")
        self.extra_panels: dict[str, QWidget] = {}
        self._add_registered_panels()
        self.setCentralWidget(self.tabs)

        self.library_dock = self._dock("Models", self.library, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.queue_dock = self._dock("Queue", self.queue, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.history_dock = self._dock("History", self.history_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([self.library_dock, self.history_dock], [300, 330], Qt.Orientation.Horizontal)

        self.statusBar().addPermanentWidget(self.model_status)
        self.help = HelpOverlay(self)
        self._build_menus()
        self._build_shortcuts()
        self._connect()
        self.restore_settings()
        self.library.refresh()
        if self.outputs_dir.is_dir():
            self.history_panel.load_saved(self.outputs_dir)

    # ------------------------------------------------------------------ layout helpers
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _add_registered_panels(self) -> None:
        for name in panels.OPTIONAL_PANELS:
            if importlib.util.find_spec(name) is not None:
                try:
                    importlib.import_module(name)
                except Exception as exc:  # noqa: BLE001 - a broken optional panel must not stop the app
                    log.exception("optional panel %s failed to import", name)
                    self.errors.append(exc)
        for spec in sorted(panels.PANELS.values(), key=lambda p: p.order):
            widget = spec.factory(self)
            self.extra_panels[spec.title] = widget
            self.tabs.addTab(widget, spec.title)

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file = menu.addMenu("&File")
        self._action(file, "&Import model\u2026", self.import_model_dialog, QKeySequence.StandardKey.Open)
        self._action(file, "Open settings from &PNG\u2026", self.open_png_dialog)
        file.addSeparator()
        self._action(file, "&Export PNG\u2026", lambda: self.session.export_current("png"), "Ctrl+E")
        self._action(file, "Export &GIF of the denoising\u2026", lambda: self.session.export_current("gif"))
        self._action(file, "Export &text\u2026", lambda: self.session.export_current("text"))
        self._action(file, "Open outputs &folder", self.open_outputs_folder)
        file.addSeparator()
        self._action(file, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        run = menu.addMenu("&Run")
        self._action(run, "&Generate", self.session.start_generate, "Ctrl+Return")
        self._action(run, "&Branch from this step", lambda: self.spawn(self.session.branch()), "Ctrl+B")
        self._action(run, "&Cancel", self.session.cancel_current)
        view = menu.addMenu("&View")
        for i, (mode, label) in enumerate(
            (("state", "State"), ("prediction", "Prediction"), ("map", "State map"))
        ):
            self._action(view, label, lambda m=mode: self.canvas.set_mode(m), str(i + 1))
        view.addSeparator()
        self._action(view, "Zoom in", lambda: self.canvas.view.step_zoom(1), "Ctrl+=")
        self._action(view, "Zoom out", lambda: self.canvas.view.step_zoom(-1), "Ctrl+-")
        self._action(view, "Fit", lambda: self.canvas.zoom.setCurrentIndex(0), "Ctrl+0")
        view.addSeparator()
        for dock in (self.library_dock, self.queue_dock, self.history_dock):
            view.addAction(dock.toggleViewAction())
        help_menu = menu.addMenu("&Help")
        self._action(help_menu, "&Shortcuts", self.help.toggle, "F1")
        self._action(help_menu, "&About Prime Studio", lambda: show_about(self, enginelink.app_version()))

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        return action

    def _build_shortcuts(self) -> None:
        keys = {
            "Ctrl+Enter": self.session.start_generate,
            "Escape": self.escape,
            "Left": lambda: self.timeline.step_by(-1),
            "Right": lambda: self.timeline.step_by(1),
            "Home": lambda: self.timeline.seek(0),
            "End": lambda: self.timeline.seek(self.timeline.slider.maximum()),
            "Space": self.timeline.toggle_play,
            "B": lambda: self.canvas.brush.toggle(),
            "E": lambda: self.canvas.eraser.toggle(),
        }
        self.shortcuts = []
        for key, slot in keys.items():
            sc = QShortcut(QKeySequence(key), self)
            sc.activated.connect(slot)
            self.shortcuts.append(sc)

    def _connect(self) -> None:
        s = self.session
        self.generate_panel.generate_requested.connect(s.start_generate)
        self.generate_panel.cancel_requested.connect(s.cancel_current)
        self.library.load_requested.connect(lambda path: self.spawn(s.load_model(path)))
        self.library.random_requested.connect(
            lambda kind: self.spawn(s.load_model(enginelink.random_config(kind)))
        )
        self.library.import_requested.connect(self.import_model_dialog)
        self.library.files_dropped.connect(self.handle_files)
        self.timeline.step_changed.connect(s.show_step)
        self.canvas.mode_changed.connect(lambda _m: s.show_step(self.timeline.value()))
        self.canvas.view.hovered.connect(s.hover_pixel)
        self.canvas.inpaint_requested.connect(lambda: self.spawn(s.inpaint()))
        self.canvas.detail_requested.connect(lambda keep: self.spawn(s.regenerate_detail(keep)))
        self.text.view.hovered.connect(s.hover_token)
        self.text.regenerate_requested.connect(lambda n, a, b: self.spawn(s.regenerate_span(n, a, b)))
        self.history_panel.selected.connect(s.select_entry)
        self.history_panel.compare_requested.connect(self.compare_entries)
        self.history_panel.export_requested.connect(s.export_entry)
        self.history_panel.open_folder_requested.connect(self.open_outputs_folder)
        self.history_panel.saved_selected.connect(self.open_saved_output)
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "colorSchemeChanged"):
            hints.colorSchemeChanged.connect(lambda _scheme: s.show_step(self.timeline.value()))

    # ------------------------------------------------------------------ tasks and errors
    def spawn(self, coro: Coroutine) -> asyncio.Task:
        """Run a coroutine on the GUI loop; its exceptions become an error dialog."""
        task = asyncio.ensure_future(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, coro: Coroutine) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user with details
            self.report_error("Something went wrong", exc)
            return None

    def report_error(self, title: str, exc: BaseException) -> None:
        """Show an error dialog with details and log it."""
        self.errors.append(exc)
        self.statusBar().showMessage(f"{title}: {exc}", 10000)
        show_error(self, title, exc)

    def escape(self) -> None:
        """Esc: close the help overlay, else cancel the running job."""
        if self.help.isVisible():
            self.help.hide()
        else:
            self.session.cancel_current()

    # ------------------------------------------------------------------ files
    def import_model_dialog(self) -> None:
        """Pick .safetensors files to import into the library."""
        paths, _ = QFileDialog.getOpenFileNames(self, "Import model", "", "Prime models (*.safetensors)")
        if paths:
            self.handle_files(paths)

    def open_png_dialog(self) -> None:
        """Pick a studio PNG to restore its settings."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Open settings from PNG", str(self.outputs_dir), "PNG (*.png)"
        )
        if path:
            self.handle_files([path])

    def handle_files(self, paths: list[str]) -> None:
        """Dropped or opened files: models are imported, PNGs restore their settings."""
        for path in paths:
            try:
                if path.endswith(".safetensors"):
                    dest = enginelink.eng.import_model(path)
                    self.statusBar().showMessage(f"Imported {Path(dest).name}", 5000)
                    self.library.refresh()
                elif path.lower().endswith(".png"):
                    self.session.restore_png(path)
                else:
                    raise ValueError(f"{path}: drop a .safetensors model or a Prime Studio PNG")
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self.report_error(f"Cannot open {Path(path).name}", exc)

    def open_saved_output(self, path: str) -> None:
        """An output from an earlier session: restore the settings it was made with."""
        try:
            if path.endswith(".png"):
                self.session.restore_png(path)
            else:
                settings = Path(path + ".json")
                values = json.loads(settings.read_text(encoding="utf-8")) if settings.exists() else {}
                self.generate_panel.set_values(dict(values, seed_mode="fixed"))
                self.flash(f"Restored settings from {Path(path).name}")
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.report_error(f"Cannot open {Path(path).name}", exc)

    def open_outputs_folder(self) -> None:
        """Show the outputs folder in the file manager."""
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.outputs_dir)))

    def compare_entries(self, a: int, b: int) -> None:
        """Show two history entries side by side in the Compare tab."""
        self.compare.show_entries(self.history.get(a), self.history.get(b))
        self.tabs.setCurrentWidget(self.compare)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Accept dropped files anywhere in the window."""
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Import models / restore PNG settings."""
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.handle_files(paths)

    # ------------------------------------------------------------------ persistence
    def restore_settings(self) -> None:
        """Window geometry, dock layout, generation settings and view options."""
        geometry = self.settings.get_bytes("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:  # first start: most of the screen, at most 1400 x 860
            screen = self.screen().availableGeometry() if self.screen() else None
            width, height = 1400, 860
            if screen is not None:
                width, height = (
                    min(width, int(screen.width() * 0.92)),
                    min(height, int(screen.height() * 0.9)),
                )
            self.resize(width, height)
        state = self.settings.get_bytes("window/state")
        if state is not None:
            self.restoreState(state)
        split = self.settings.get_bytes("window/generateSplit")
        if split is not None:
            self.generate_split.restoreState(split)
        values = self.settings.get_json("generate/values")
        if isinstance(values, dict):
            self.generate_panel.set_values(values)
        view = self.settings.get_json("view", {}) or {}
        if isinstance(view, dict):
            self.canvas.set_mode(view.get("mode", "state"))
            i = self.canvas.zoom.findData(view.get("zoom", 0))
            if i >= 0:
                self.canvas.zoom.setCurrentIndex(i)
            i = self.timeline.speed.findData(view.get("speed", 1.0))
            if i >= 0:
                self.timeline.speed.setCurrentIndex(i)

    def save_settings(self) -> None:
        """Persist what :meth:`restore_settings` reads."""
        self.settings.set_bytes("window/geometry", self.saveGeometry())
        self.settings.set_bytes("window/state", self.saveState())
        self.settings.set_bytes("window/generateSplit", QByteArray(self.generate_split.saveState()))
        self.settings.set_json("generate/values", self.generate_panel.values())
        self.settings.set_json(
            "view",
            {
                "mode": self.canvas.current_mode(),
                "zoom": self.canvas.zoom.currentData(),
                "speed": self.timeline.speed.currentData(),
            },
        )
        if self.session.handle is not None and self.session.handle.path:
            self.settings.set_json("model/last", self.session.handle.path)
        self.settings.sync()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Save settings and stop running work (the engine stops at its next step)."""
        self.save_settings()
        self.timeline.stop()
        self.bridge.cancel_all()
        for task in list(self._tasks):
            task.cancel()
        super().closeEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Keep the help overlay covering the window."""
        super().resizeEvent(event)
        if self.help.isVisible():
            self.help.setGeometry(self.rect())

    def show_view(self, modality: str) -> None:
        """Canvas for images, text view for text."""
        self.view_stack.setCurrentWidget(self.text if modality == "text" else self.canvas)

    def flash(self, message: str, ms: int = 5000) -> None:
        """A status-bar message."""
        self.statusBar().showMessage(message, ms)


__all__ = ["MainWindow", "QTimer"]
