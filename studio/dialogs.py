"""Small dialogs: errors with details, the About box and the shortcut overlay (F1).

Dialogs are opened with ``open()`` (window-modal, non-blocking): no nested event loops.
"""

from __future__ import annotations

import logging
import platform
import traceback

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QLabel, QMessageBox, QVBoxLayout, QWidget

log = logging.getLogger(__name__)

SHORTCUTS = (
    ("Ctrl+Enter", "Generate"),
    ("Esc", "Cancel the running job (keeps the partial result)"),
    ("Left / Right", "Previous / next step"),
    ("Home / End", "First / last step"),
    ("Space", "Play / pause the denoising"),
    ("Ctrl+B", "Branch: continue from this step with a new seed"),
    ("1 / 2 / 3", "View: state / prediction / state map"),
    ("Ctrl+= / Ctrl+- / Ctrl+0", "Zoom in / out / fit"),
    ("B / E", "Brush / eraser (inpaint mask)"),
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
    """A translucent overlay listing the shortcuts; click or press F1/Esc to close."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(48, 48, 48, 48)
        rows = "".join(
            f"<tr><td align='right'><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in SHORTCUTS
        )
        label = QLabel(
            f"<h2>Shortcuts</h2><table cellspacing='6'>{rows}</table>"
            "<p style='color:#bbb'>Click anywhere or press F1 to close.</p>"
        )
        label.setStyleSheet("color: white; font-size: 11pt;")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(label)
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
        """Dim what is underneath."""
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0, 190))

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Close on click."""
        self.hide()
