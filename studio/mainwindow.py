"""The main window: models, queue, workspace tabs and history.

Library and queue on the left, the workspace tabs (Generate, Compare, and
panels registered in :mod:`studio.panels`, e.g. Train) in the middle, history on the right.

The window renders state and sends requests; the async work lives in :mod:`studio.workspace.session`.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from studio import crash, enginelink, panels, render, wheelguard
from studio.bridge import QUEUED, RUNNING, Bridge
from studio.dialogs import HelpOverlay, reveal, show_about, show_error
from studio.history.entries import History
from studio.history.tree import HistoryPanel
from studio.library import LibraryPanel
from studio.queue import QueuePanel
from studio.settings import Settings
from studio.theme import THEME_LABELS, THEMES, apply_theme
from studio.workspace.canvas import CanvasPanel
from studio.workspace.compare import ComparePanel
from studio.workspace.generate import REQUEST_KEYS, GeneratePanel
from studio.workspace.session import Session, Views
from studio.workspace.textview import TextPanel
from studio.workspace.timeline import Timeline

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """Prime Studio's main window."""

    def __init__(self, bridge: Bridge, settings: Settings, outputs_dir: Path | None = None) -> None:
        super().__init__()
        wheelguard.install()  # the wheel edits a spin box or combo box only while it has focus
        self.setWindowTitle("Prime Studio")
        self.setObjectName("PrimeStudioMainWindow")
        self.setAcceptDrops(True)
        self.bridge = bridge
        self.settings = settings
        self.history = History()
        self.outputs_dir = outputs_dir or enginelink.data_dir() / "outputs"
        self._tasks: set[asyncio.Task] = set()
        self.errors: list[BaseException] = []  # shown in dialogs; kept for tests and the self-test
        # crash safety (studio.crash): the waiting queue on disk, the notice after an abnormal exit
        self.data_dir = enginelink.data_dir()
        self.log_path = self.data_dir / "logs" / "studio.log"  # app.main sets the one it opened
        self.leftover_waiting = crash.load_waiting(self.data_dir)  # from a run that did not end cleanly
        self._replays: dict[int, dict[str, Any]] = {}  # job id -> how to queue it again
        self._journal: list[dict[str, Any]] | None = None  # what the queue file says now
        self._closing = False
        self._quit_confirmed = False
        self._saved_snapshot: dict[str, Any] | None = None

        # ---------------------------------------------------------------- widgets
        self.library = LibraryPanel()
        self.queue = QueuePanel(bridge)
        self.generate_panel = GeneratePanel()
        self.canvas = CanvasPanel()
        self.text = TextPanel()
        self.timeline = Timeline()
        self.history_panel = HistoryPanel()
        self.model_status = QLabel("no model")
        self.model_status.setMinimumWidth(1)  # a long model name is cut, it never widens the window
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
        self.recovery_bar = crash.RecoveryBar()
        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.recovery_bar)
        central_layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

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
        self._start_crash_safety()

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
        self._action(file, "Export &WebP of the denoising\u2026", lambda: self.session.export_current("webp"))
        self._action(file, "Export &text\u2026", lambda: self.session.export_current("text"))
        self._action(file, "Open outputs &folder", self.open_outputs_folder)
        file.addSeparator()
        self._action(file, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        self._build_edit_menu(menu.addMenu("&Edit"))
        run = menu.addMenu("&Run")
        self._action(run, "&Generate", self.session.start_generate, "Ctrl+Return")
        self._action(run, "&Branch from this step", lambda: self.spawn(self.session.branch()), "Ctrl+B")
        self._action(run, "&Cancel", self.session.cancel_current)
        view = menu.addMenu("&View")
        for i, mode in enumerate(render.MODES):
            # the key is a guarded one-key shortcut (_build_shortcuts); "\t" shows it in the menu
            self._action(view, f"{render.MODE_LABELS[mode]}\t{i + 1}", lambda m=mode: self.show_mode(m))
        view.addSeparator()
        self._action(view, "Zoom in", lambda: self.canvas.view.step_zoom(1), "Ctrl+=")
        self._action(view, "Zoom out", lambda: self.canvas.view.step_zoom(-1), "Ctrl+-")
        self._action(view, "Fit", lambda: self.canvas.zoom.setCurrentIndex(0), "Ctrl+0")
        view.addSeparator()
        self._build_theme_menu(view.addMenu("&Theme"))
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
        """Ctrl+Enter and Esc from anywhere in the window; one-key shortcuts only where they are safe.

        Left/Right/Home/End/Space act on the timeline while the canvas, the text view or the timeline
        has focus (click one of them); 1-4 (view), B and E (brush, eraser) act while no text field has
        focus, on the Generate tab (B/E with an image shown). Each says what it did in the status bar.
        """
        anywhere = {
            "Ctrl+Enter": self.session.start_generate,
            "Escape": self.escape,
        }
        timeline_keys = {
            "Left": lambda: self.timeline.step_by(-1),
            "Right": lambda: self.timeline.step_by(1),
            "Home": lambda: self.timeline.seek(0),
            "End": lambda: self.timeline.seek(self.timeline.slider.maximum()),
            "Space": self.timeline.toggle_play,
        }
        view_keys = {str(i + 1): (lambda m=mode: self.show_mode(m)) for i, mode in enumerate(render.MODES)}
        canvas_keys = {"B": lambda: self.toggle_tool("brush"), "E": lambda: self.toggle_tool("eraser")}
        self.shortcuts: dict[str, QShortcut] = {}
        for group in (anywhere, timeline_keys, view_keys, canvas_keys):
            for key, slot in group.items():
                sc = QShortcut(QKeySequence(key), self)
                sc.setContext(Qt.ShortcutContext.WindowShortcut)
                sc.activated.connect(slot)
                self.shortcuts[key] = sc
        self._timeline_keys = [self.shortcuts[k] for k in timeline_keys]
        self._view_keys = [self.shortcuts[k] for k in view_keys]
        self._canvas_keys = [self.shortcuts[k] for k in canvas_keys]
        QApplication.instance().focusChanged.connect(self._focus_changed)
        self.tabs.currentChanged.connect(lambda _i: self.sync_shortcuts())
        self.view_stack.currentChanged.connect(lambda _i: self.sync_shortcuts())
        for widget in (self.canvas.view, self.text.view, self.timeline):
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # a click gives it focus
        self.sync_shortcuts()

    def _focus_changed(self, _old: QWidget | None, _new: QWidget | None) -> None:
        self.sync_shortcuts()

    def sync_shortcuts(self) -> None:
        """Enable the one-key shortcuts that cannot take a key from what has focus now."""
        focus = QApplication.focusWidget()
        generating = self.tabs.currentWidget() is self.generate_split
        typing = is_text_field(focus)
        in_workspace = focus is not None and any(
            w is focus or w.isAncestorOf(focus) for w in (self.view_stack, self.timeline)
        )
        for sc in self._timeline_keys:
            sc.setEnabled(generating and in_workspace and not typing)
        for sc in self._view_keys:
            sc.setEnabled(generating and not typing)
        canvas_shown = self.view_stack.currentWidget() is self.canvas
        for sc in self._canvas_keys:
            sc.setEnabled(generating and canvas_shown and not typing)

    def show_mode(self, mode: str) -> None:
        """View menu / 1-4: show a view mode, and say so."""
        self.canvas.set_mode(mode)
        self.flash(f"View: {render.MODE_LABELS[mode]}", 3000)

    def toggle_tool(self, name: str) -> None:
        """B / E: toggle the brush or the eraser of the inpaint mask, and say so."""
        button = self.canvas.brush if name == "brush" else self.canvas.eraser
        button.toggle()
        state = "on" if button.isChecked() else "off"
        self.flash(f"{name.title()} {state} ({'B' if name == 'brush' else 'E'} toggles it)", 3000)

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
        self.canvas.inpaint_requested.connect(lambda: self.spawn(self.inpaint()))
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
        # a task cancelled before its first step (the window closed) never started ``coro``:
        # closing it says so, instead of a "coroutine was never awaited" warning when it is freed
        task.add_done_callback(lambda _task: coro.close())
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
                    self.spawn(self.session.restore_png_async(path))  # read off the GUI thread
                else:
                    raise ValueError(f"{path}: drop a .safetensors model or a Prime Studio PNG")
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self.report_error(f"Cannot open {Path(path).name}", exc)

    def open_saved_output(self, path: str) -> None:
        """An output from an earlier session: reopen it fully (or restore its settings)."""
        self.session.open_saved(path)

    def open_outputs_folder(self) -> None:
        """Show the outputs folder in the file manager (or its path, when there is none)."""
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        reveal(self, self.outputs_dir, "outputs folder")

    # ------------------------------------------------------------------ Edit menu and theme
    def _build_edit_menu(self, edit) -> None:
        """Undo / redo of inpaint-mask edits; copy the current output's image or text."""
        stack = self.canvas.view.undo_stack
        self.undo_action = stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcuts([QKeySequence("Ctrl+Z")])
        self.redo_action = stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        edit.addAction(self.undo_action)
        edit.addAction(self.redo_action)
        edit.addSeparator()
        self.copy_image_action = self._action(edit, "Copy &image\tCtrl+Shift+C", self.copy_image)
        self.copy_text_action = self._action(edit, "Copy &text\tCtrl+Shift+C", self.copy_text)
        edit.aboutToShow.connect(self._update_copy_actions)
        self.copy_shortcut = QShortcut(QKeySequence("Ctrl+Shift+C"), self)
        self.copy_shortcut.activated.connect(self.copy_output)

    def _update_copy_actions(self) -> None:
        entry = self.session.entry
        modality = entry.model.config.modality if entry is not None else None
        self.copy_image_action.setEnabled(modality == "image")
        self.copy_text_action.setEnabled(modality == "text")

    def copy_output(self) -> bool:
        """Ctrl+Shift+C: copy the current output, its image or its text."""
        entry = self.session.entry
        if entry is not None and entry.model.config.modality == "text":
            return self.copy_text()
        return self.copy_image()

    def copy_image(self) -> bool:
        """Put the current output's image (its samples in a grid, 1:1) on the clipboard."""
        entry = self.session.entry
        if entry is None or entry.model.config.modality != "image":
            self.flash("Nothing to copy: no image output is shown")
            return False
        image = render.to_qimage(render.grid(self.session.entry_images(entry)))
        QGuiApplication.clipboard().setImage(image)
        self.flash(f"Copied the image of output #{entry.id} ({image.width()}\u00d7{image.height()} px)")
        return True

    def copy_text(self) -> bool:
        """Put the current output's text (every sample) on the clipboard."""
        from studio.history import store

        entry = self.session.entry
        if entry is None or entry.model.config.modality != "text":
            self.flash("Nothing to copy: no text output is shown")
            return False
        QGuiApplication.clipboard().setText(store.join_texts(self.session.entry_texts(entry)))
        self.flash(f"Copied the text of output #{entry.id}")
        return True

    def _build_theme_menu(self, menu) -> None:
        group = QActionGroup(self)
        group.setExclusive(True)
        current = self.settings.theme()
        self.theme_actions: dict[str, QAction] = {}
        for name in THEMES:
            action = QAction(THEME_LABELS[name], self, checkable=True)
            action.setChecked(name == current)
            action.triggered.connect(lambda _checked=False, n=name: self.set_theme(n))
            group.addAction(action)
            menu.addAction(action)
            self.theme_actions[name] = action

    def set_theme(self, name: str) -> None:
        """View > Theme: apply System, Light or Dark now and save the choice."""
        apply_theme(name)
        self.settings.set_theme(name)
        self.theme_actions[name].setChecked(True)
        self.session.show_step(self.timeline.value())  # the text colours follow the palette

    async def inpaint(self):
        """Inpaint the painted region; then clear the mask (undoable) unless "Keep mask" is on."""
        entry = await self.session.inpaint()
        if entry is not None and not self.canvas.keep_mask.isChecked():
            self.canvas.view.clear_mask("Clear mask after inpainting")
        return entry

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
            # fields a model's recommendation set, unchanged since: a plain model resets them
            applied = self.settings.get_json("generate/recommended")
            source = self.settings.get_json("generate/recommendation")
            self.generate_panel.restore_applied_recommendation(applied, source)
        view = self.settings.get_json("view", {}) or {}
        if isinstance(view, dict):
            self.canvas.set_mode(view.get("mode", "state"))
            i = self.canvas.zoom.findData(view.get("zoom", 0))
            if i >= 0:
                self.canvas.zoom.setCurrentIndex(i)
            i = self.timeline.speed.findData(view.get("speed", 1.0))
            if i >= 0:
                self.timeline.speed.setCurrentIndex(i)

    def settings_snapshot(self) -> dict[str, Any]:
        """What :meth:`save_settings` writes: key -> QByteArray or JSON-ready value."""
        out: dict[str, Any] = {
            "window/geometry": self.saveGeometry(),
            "window/state": self.saveState(),
            "window/generateSplit": QByteArray(self.generate_split.saveState()),
            "generate/values": self.generate_panel.values(),
            "generate/recommended": self.generate_panel.applied_recommendation(),
            "generate/recommendation": self.generate_panel.recommendation_source(),
            "view": {
                "mode": self.canvas.current_mode(),
                "zoom": self.canvas.zoom.currentData(),
                "speed": self.timeline.speed.currentData(),
            },
        }
        if self.session.handle is not None and self.session.handle.path:
            out["model/last"] = self.session.handle.path
        form = getattr(self.extra_panels.get("Train"), "form", None)
        if form is not None and hasattr(form, "values"):
            out["train/values"] = form.values()
        return out

    def save_settings(self) -> None:
        """Persist what :meth:`restore_settings` reads (and the Train tab's form), now."""
        snapshot = self.settings_snapshot()
        for key, value in snapshot.items():
            if isinstance(value, QByteArray):
                self.settings.set_bytes(key, value)
            else:
                self.settings.set_json(key, value)
        self.settings.sync()
        self._saved_snapshot = snapshot

    def autosave(self) -> bool:
        """Save the settings when anything changed since the last save (every second); True if saved."""
        snapshot = self.settings_snapshot()
        if snapshot == self._saved_snapshot:
            return False
        self.save_settings()
        return True

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Save settings and stop running work (the engine stops at its next step)."""
        self.save_settings()
        self.autosave_timer.stop()
        self.timeline.stop()
        self._closing = True  # a clean exit: nothing waits to be queued again next time
        self.leftover_waiting = []
        self.bridge.cancel_all()
        self._write_journal([])
        for task in list(self._tasks):
            task.cancel()
        super().closeEvent(event)

    # ------------------------------------------------------------------ crash safety and quitting
    def _start_crash_safety(self) -> None:
        """Save settings as they change, keep the waiting queue on disk, ask before quitting a run."""
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(1000)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()
        self._saved_snapshot = self.settings_snapshot()  # what was just restored
        self.bridge.queue_changed.connect(self.record_queue)
        self.recovery_bar.open_log.connect(self.open_log)
        self.recovery_bar.requeue.connect(lambda: self.spawn(self.requeue_waiting()))
        self.recovery_bar.dismissed.connect(self.dismiss_waiting)
        self.installEventFilter(self)  # after the panels': asked first when the window closes

    def waiting_generations(self) -> list[dict[str, Any]]:
        """Plain generations that run or wait now, as settings that can queue them again."""
        out = []
        for job in self.bridge.jobs():
            if job.kind != "generate" or job.status not in (QUEUED, RUNNING) or not job.meta.get("plain"):
                continue
            if job.id not in self._replays:
                self._replays[job.id] = self._replay_of(job)
            if self._replays[job.id]:
                out.append(self._replays[job.id])
        return out

    def _replay_of(self, job: Any) -> dict[str, Any]:
        """How to run a generation again: its model file and the Generate panel's values for it."""
        request = job.meta.get("request")
        path = job.meta.get("model_path")
        if not path or request is None:
            return {}  # an in-memory (random) model cannot be loaded again
        # the panel still shows what the job was made from (it is queued as it is read); the
        # request has the numbers that were used (the seed drawn for it included)
        values = dict(self.generate_panel.values(), seed_mode="fixed")
        for key in REQUEST_KEYS:
            value = getattr(request, key, None)
            if value is not None:
                values[key] = value
        return {"model_path": path, "model": job.meta.get("model", ""), "label": job.label, "values": values}

    def record_queue(self) -> None:
        """Write the waiting generations to the data folder whenever the queue changes."""
        if self._closing:
            return
        live = {job.id for job in self.bridge.jobs()}
        self._replays = {k: v for k, v in self._replays.items() if k in live}
        self._write_journal(self.waiting_generations() + self.leftover_waiting)

    def _write_journal(self, items: list[dict[str, Any]]) -> None:
        if items == self._journal:
            return
        try:
            crash.save_waiting(self.data_dir, items)
            self._journal = items
        except OSError as exc:  # e.g. a full disk: the queue itself is unaffected
            log.warning("cannot save the waiting queue: %s", exc)

    def offer_recovery(self, previous: crash.PreviousRun) -> None:
        """After an abnormal exit: say so, what came back, offer the log and the waiting generations."""
        restored = []
        if self.settings.get_bytes("window/state") is not None:
            restored.append("window layout")
        if self.session.handle is not None and self.session.handle.path:
            restored.append(f"model {self.session.handle.name}")
        outputs = (
            [p for p in self.outputs_dir.glob("*") if p.suffix in (".png", ".txt")]
            if self.outputs_dir.is_dir()
            else []
        )
        if outputs:
            restored.append(f"{len(outputs)} saved output(s) in History")
        self.recovery_bar.offer(previous, restored, len(self.leftover_waiting))
        log.warning("recovery offered: %s; %d waiting", restored, len(self.leftover_waiting))

    async def requeue_waiting(self) -> int:
        """Queue the generations that were waiting when the studio stopped; returns how many."""
        items, self.leftover_waiting = list(self.leftover_waiting), []
        self.recovery_bar.hide()
        before = self.generate_panel.values()
        queued = 0
        try:
            for item in items:
                try:
                    await self.session.load_model(item["model_path"])
                except Exception as exc:  # noqa: BLE001 - the others can still run
                    self.report_error(f"Cannot queue {item.get('label', 'a generation')} again", exc)
                    continue
                self.generate_panel.set_values(dict(item["values"], seed_mode="fixed"))
                self.spawn(self.session.generate())
                for _ in range(2):  # let it read the panel and queue its job before the next one
                    await asyncio.sleep(0)
                queued += 1
        finally:
            self.generate_panel.set_values(before)
            self.record_queue()
        self.flash(f"Queued {queued} generation(s) again")
        return queued

    def dismiss_waiting(self) -> None:
        """Do not queue the earlier waiting generations."""
        self.leftover_waiting = []
        self.record_queue()

    def open_log(self) -> None:
        """Show the log file (or its path, when nothing can open it)."""
        reveal(self, self.log_path, "log file")

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        """Closing while a training job runs: ask first, then checkpoint the run before quitting."""
        if obj is self and event.type() == QEvent.Type.Close and not self._quit_confirmed:
            training = [j for j in self.bridge.jobs() if j.kind == "train"]
            if training:
                if not self.confirm_quit_during_training():
                    event.ignore()
                    return True
                self._quit_confirmed = True
                running = [j for j in training if j.status == RUNNING]
                if running:  # (a queued one resumes from the checkpoint it paused at)
                    event.ignore()
                    self.spawn(self._checkpoint_then_close(running))
                    return True
        return super().eventFilter(obj, event)

    def confirm_quit_during_training(self) -> bool:
        """Ask whether to quit while training; True = checkpoint the run and quit."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Training is running")
        box.setText("A training run is in progress. Quit anyway?")
        box.setInformativeText(
            "The run is saved as a checkpoint first; the Train tab offers to resume it next time."
        )
        quit_button = box.addButton("Checkpoint and quit", QMessageBox.ButtonRole.AcceptRole)
        keep = box.addButton("Keep training", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.exec()
        return box.clickedButton() is quit_button

    async def _checkpoint_then_close(self, running: list[Any], timeout: float = 300.0) -> None:
        """Stop the training run at its next step with a checkpoint, then close the window."""
        panel = self.extra_panels.get("Train")
        if getattr(panel, "state", None) == "running" and getattr(panel, "job", None) in running:
            panel.pause()  # the Train tab's own pause: checkpoint, run record marked paused
        else:
            for job in running:
                job.cancel()  # the engine writes a checkpoint when a training run is cancelled
        self.statusBar().showMessage("Saving a checkpoint of the training run before quitting\u2026")
        loop = asyncio.get_event_loop()
        deadline = loop.time() + timeout
        while any(not job.done() for job in running) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0)  # the Train tab records how the run ended
        self.close()

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


def is_text_field(widget: QWidget | None) -> bool:
    """True for widgets that take typed characters: line edits, spin boxes, editable text and combos."""
    if widget is None:
        return False
    if isinstance(widget, QLineEdit):
        return not widget.isReadOnly()
    if isinstance(widget, QAbstractSpinBox):
        return True
    if isinstance(widget, (QTextEdit, QPlainTextEdit)):
        return not widget.isReadOnly()
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    return False


__all__ = ["MainWindow", "QTimer", "is_text_field"]
