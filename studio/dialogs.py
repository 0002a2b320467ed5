"""Small dialogs: errors with details, the About box, the shortcut overlay (F1) and "Reveal".

:func:`reveal` opens a folder in the file manager; where there is none (``openUrl`` fails), a
message shows the path, selectable, with a button that copies it.

Dialogs are opened with ``open()`` (window-modal, non-blocking): no nested event loops.
"""

from __future__ import annotations

import logging
import platform
import traceback
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication, QPainter
from PySide6.QtWidgets import QFrame, QLabel, QMessageBox, QScrollArea, QVBoxLayout, QWidget

log = logging.getLogger(__name__)

SHORTCUTS = (
    ("Ctrl+Enter", "Generate"),
    ("Esc", "Cancel the running job (keeps the partial result)"),
    ("Left / Right", "Previous / next step"),
    ("Home / End", "First / last step"),
    ("Space", "Play / pause the denoising"),
    ("Ctrl+B", "Branch: continue from this step with a new seed"),
    ("1 / 2 / 3 / 4", "View: state / prediction / state map / confidence"),
    ("Ctrl+= / Ctrl+- / Ctrl+0", "Zoom in / out / fit"),
    ("B / E", "Brush / eraser (inpaint mask)"),
    ("Ctrl+Z / Ctrl+Shift+Z", "Undo / redo a mask edit"),
    ("Ctrl+Shift+C", "Copy the current output (image or text)"),
    ("Middle-drag", "Pan the zoomed canvas (left-drag too when no mask tool is on)"),
    ("Ctrl+O", "Import a model"),
    ("Ctrl+E", "Export the selected output as PNG"),
    ("F1", "Show / hide this help"),
)


def show_error(parent: QWidget | None, title: str, exc: BaseException) -> QMessageBox:
    """Show an error with its traceback under "Show Details" (non-blocking)."""
    log.error("%s: %s", title, exc, exc_info=(type(exc), exc, exc.__traceback__))
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle(title)
    box.setText(f"<b>{title}</b>")
    box.setInformativeText(str(exc) or type(exc).__name__)
    box.setDetailedText("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def reveal(parent: QWidget | None, path: str | Path, what: str = "folder") -> QMessageBox | None:
    """Open ``path`` in the file manager; when none can open it, show the path to copy instead.

    Returns the message box shown in that case (None when the file manager opened it).
    """
    path = Path(path)
    if QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
        return None
    log.info("no file manager opened %s", path)
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Information)
    box.setWindowTitle(f"Show {what}")
    box.setText(f"No file manager is available to show the {what}. It is here:")
    box.setInformativeText(str(path))
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    copy = box.addButton("Copy path", QMessageBox.ButtonRole.ActionRole)
    copy.clicked.disconnect()  # keep the box open after copying
    copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(str(path)))
    box.addButton(QMessageBox.StandardButton.Close)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def about_text(app_version: str) -> str:
    """HTML for the About box: the versions of everything that matters."""
    import PySide6
    import torch

    try:
        import qasync

        qasync_version = getattr(qasync, "__version__", "installed")
    except ImportError:  # pragma: no cover
        qasync_version = "missing"
    from PySide6.QtCore import qVersion

    rows = [
        ("Prime Studio", app_version),
        ("Python", platform.python_version()),
        ("PyTorch", torch.__version__),
        ("PySide6", PySide6.__version__),
        ("Qt", qVersion()),
        ("qasync", qasync_version),
        ("Platform", platform.platform()),
    ]
    table = "".join(f"<tr><td>{k}</td><td>&nbsp;{v}</td></tr>" for k, v in rows)
    return (
        "<h3>Prime Studio</h3><p>Discrete diffusion with partial masking (Prime): watch every "
        f"denoising step, including partially decided tokens.</p><table>{table}</table>"
    )


def show_about(parent: QWidget, app_version: str) -> QMessageBox:
    """The About box (non-blocking)."""
    box = QMessageBox(parent)
    box.setWindowTitle("About Prime Studio")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(about_text(app_version))
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


class HelpOverlay(QWidget):
    """An opaque overlay listing the shortcuts; click or press F1/Esc to close.

    It covers the whole window in the window colour (nothing underneath shows through the text);
    the list scrolls when the window is too small for it.
    """

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAutoFillBackground(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 24, 24, 24)
        rows = "".join(
            f"<tr><td align='right'><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in SHORTCUTS
        )
        self.label = QLabel(
            f"<h2>Shortcuts</h2><table align='center' cellspacing='6'>{rows}</table>"
            "<p>Click anywhere or press F1 to close.</p>"
        )
        self.label.setStyleSheet("font-size: 11pt;")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.scroll = QScrollArea()
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.label)
        self.scroll.viewport().setAutoFillBackground(False)
        self.label.setAutoFillBackground(False)
        self.scroll.viewport().installEventFilter(self)
        layout.addWidget(self.scroll)
        self.hide()

    def toggle(self) -> None:
        """Show over the whole parent, or hide."""
        if self.isVisible():
            self.hide()
            return
        self.setGeometry(self.parentWidget().rect())
        self.raise_()
        self.show()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Cover what is underneath with the window colour (opaque)."""
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), self.palette().window())
        finally:
            painter.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Close on click."""
        self.hide()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        """A click on the list closes too (the scroll area would take it)."""
        if obj is self.scroll.viewport() and event.type() == event.Type.MouseButtonPress:
            self.hide()
            return True
        return super().eventFilter(obj, event)
