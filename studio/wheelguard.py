"""The wheel guard: scrolling a form never edits the spin box or combo box under the pointer.

A spin box or combo box takes the mouse wheel only while it has keyboard focus (clicked or
tabbed into). Otherwise the wheel turn goes to the scroll area around it (the form scrolls),
or does nothing where there is none. Such widgets also get
``Qt.StrongFocus``, so a wheel turn over them does not give them focus (Qt's default for spin
boxes, ``WheelFocus``, would, and the next turn would edit them).

:func:`install` puts one filter on the application; it sees every spin box and combo box, also
those made later (the Train form, dialogs).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QApplication, QComboBox, QWidget

GUARDED = (QAbstractSpinBox, QComboBox)


def guarded_owner(obj: QObject) -> QWidget | None:
    """The spin box or combo box that ``obj`` is or belongs to (its line edit), else None."""
    for candidate in (obj, obj.parent() if isinstance(obj, QWidget) else None):
        if isinstance(candidate, GUARDED):
            return candidate
    return None


class WheelGuard(QObject):
    """Application event filter: wheel events reach spin/combo boxes only while they have focus."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        """Polish: StrongFocus for spin/combo boxes; Wheel over an unfocused one: to the scroll area."""
        kind = event.type()
        if kind == QEvent.Type.Polish and isinstance(obj, GUARDED):
            if obj.focusPolicy() == Qt.FocusPolicy.WheelFocus:
                obj.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        elif kind == QEvent.Type.Wheel:
            owner = guarded_owner(obj)
            if owner is not None and not owner.hasFocus():
                self.pass_on(owner, event)
                return True
        return False

    @staticmethod
    def pass_on(owner: QWidget, event: QWheelEvent) -> None:
        """Give the wheel to the scroll area around ``owner`` (none: the turn does nothing)."""
        area = owner.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is None:
            event.ignore()
            return
        viewport = area.viewport()
        pos = QPointF(viewport.mapFromGlobal(event.globalPosition().toPoint()))
        forwarded = QWheelEvent(
            pos,
            event.globalPosition(),
            event.pixelDelta(),
            event.angleDelta(),
            event.buttons(),
            event.modifiers(),
            event.phase(),
            event.inverted(),
        )
        QApplication.sendEvent(viewport, forwarded)
        event.accept()  # handled: the scroll area scrolled, nothing below the pointer changed


_guard: WheelGuard | None = None


def install(app: QApplication | None = None) -> WheelGuard:
    """Install the guard on the application once (later calls return the same guard)."""
    global _guard
    app = app or QApplication.instance()
    if _guard is None:
        _guard = WheelGuard(app)
        app.installEventFilter(_guard)
    return _guard


__all__ = ["GUARDED", "WheelGuard", "guarded_owner", "install"]
