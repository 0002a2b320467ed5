"""The image canvas: crisp sample grid, zoom, hover and the inpaint mask.

A grid of samples drawn crisp (nearest neighbour), zoom, hover and the
inpaint mask (brush / eraser / clear).

The canvas shows exactly the QImage it is given (``image()`` returns it, for tests); the mask is
painted on top, in token-grid coordinates (H, W) shared by all samples.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLineF, QPoint, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.render import MODE_LABELS, MODES, grid_position

HATCH_MIN_PX = 8  # hatch partial pixels once they are at least this many device pixels wide
ZOOMS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)  # 0 = fit


class CanvasView(QWidget):
    """Draws one QImage scaled by an integer factor (or fit) without smoothing."""

    hovered = Signal(int, int, int)  # sample, row, col (-1s when off the images)
    mask_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image = QImage()
        self._geometry = (1, 1, 1, None)  # n, h, w, columns
        self.zoom = 0
        self.tool = ""  # "", "brush", "eraser"
        self.brush = 2
        self.mask: np.ndarray | None = None  # (H, W) bool
        self.partial: np.ndarray | None = None  # (image H, image W) bool: hatched when zoomed in
        self.placeholder = "No sample yet. Choose a model and press Generate (Ctrl+Enter)."

    # ------------------------------------------------------------------ content
    def set_image(
        self,
        image: QImage,
        n: int,
        h: int,
        w: int,
        columns: int | None = None,
        partial: np.ndarray | None = None,
    ) -> None:
        """Show ``image`` (a grid of n samples of h x w pixels).

        ``partial`` (bool, the image's shape): pixels to hatch when zoomed in (partially decided).
        """
        self._image = image
        self._geometry = (n, h, w, columns)
        self.partial = partial
        if self.mask is None or self.mask.shape != (h, w):
            self.mask = np.zeros((h, w), dtype=bool)
        self.update()

    def clear(self) -> None:
        """Show nothing (the placeholder)."""
        self._image = QImage()
        self.update()

    def image(self) -> QImage:
        """The QImage currently shown (1 pixel per pixel, before zoom)."""
        return self._image

    def clear_mask(self) -> None:
        """Erase the inpaint mask."""
        if self.mask is not None:
            self.mask[:] = False
        self.mask_changed.emit()
        self.update()

    # ------------------------------------------------------------------ geometry
    def scale(self) -> float:
        """Logical pixels per image pixel.

        A whole number of *device* pixels, so every image pixel has the same size on high-DPI
        screens too (crisp, no uneven rows).
        """
        if self._image.isNull():
            return 1.0
        dpr = self.devicePixelRatioF() or 1.0
        if self.zoom:
            return max(1.0, round(self.zoom * dpr)) / dpr
        fit = min(self.width() / self._image.width(), self.height() / self._image.height()) * dpr
        return (float(int(fit)) if fit >= 1 else fit) / dpr

    def target_rect(self) -> QRectF:
        """Where the image is drawn, centred."""
        s = self.scale()
        w, h = self._image.width() * s, self._image.height() * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def image_pixel(self, pos: QPoint) -> tuple[int, int]:
        """Widget position -> image pixel (x, y)."""
        rect = self.target_rect()
        s = self.scale()
        return int((pos.x() - rect.x()) // s), int((pos.y() - rect.y()) // s)

    def locate(self, pos: QPoint):
        """Widget position -> (sample, row, col) or None."""
        if self._image.isNull():
            return None
        n, h, w, cols = self._geometry
        x, y = self.image_pixel(pos)
        return grid_position(n, h, w, x, y, cols)

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Draw the image without smoothing, then the mask overlay."""
        painter = QPainter(self)
        try:
            self._paint(painter)
        finally:
            painter.end()  # an exception must never leave the painter active (Qt would crash)

    def _paint(self, painter: QPainter) -> None:
        painter.fillRect(self.rect(), self.palette().base())
        if self._image.isNull():
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder
            )
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        rect = self.target_rect()
        painter.drawImage(rect, self._image, QRectF(self._image.rect()))
        if self.partial is not None and self.scale() * self.devicePixelRatioF() >= HATCH_MIN_PX:
            self._paint_hatch(painter, rect)
        if self.mask is not None and self.mask.any():
            self._paint_mask(painter, rect)

    def _paint_hatch(self, painter: QPainter, rect: QRectF) -> None:
        """A diagonal stroke across every partially decided pixel (on top of its tint)."""
        s = self.scale()
        ys, xs = np.nonzero(self.partial)
        if not len(xs):
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(255, 255, 255, 150), max(1.0, s / 10)))
        x0, y0 = rect.x() + xs * s, rect.y() + ys * s
        lines = [
            QLineF(a + 0.25 * s, b + 0.75 * s, a + 0.75 * s, b + 0.25 * s)
            for a, b in zip(x0.tolist(), y0.tolist(), strict=True)
        ]
        painter.drawLines(lines)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)

    def _paint_mask(self, painter: QPainter, rect: QRectF) -> None:
        n, h, w, cols = self._geometry
        s = self.scale()
        cols = min(cols or max(1, int(np.ceil(np.sqrt(n)))), n)
        overlay = np.zeros((h, w, 4), dtype=np.uint8)
        overlay[self.mask] = (255, 40, 90, 110)
        img = QImage(overlay.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        for i in range(n):
            r, c = divmod(i, cols)
            cell = QRectF(rect.x() + c * (w + 1) * s, rect.y() + r * (h + 1) * s, w * s, h * s)
            painter.drawImage(cell, img, QRectF(img.rect()))
        painter.setPen(QPen(QColor(255, 40, 90), 1))

    # ------------------------------------------------------------------ mouse
    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Hover and brush strokes."""
        hit = self.locate(event.position().toPoint())
        if hit is None:
            self.hovered.emit(-1, -1, -1)
        else:
            self.hovered.emit(*hit)
            if self.tool and event.buttons() & Qt.MouseButton.LeftButton:
                self._paint_at(hit[1], hit[2])

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Start a brush stroke."""
        hit = self.locate(event.position().toPoint())
        if hit is not None and self.tool and event.button() == Qt.MouseButton.LeftButton:
            self._paint_at(hit[1], hit[2])

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Hover ends."""
        self.hovered.emit(-1, -1, -1)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Ctrl+wheel zooms."""
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.step_zoom(1 if event.angleDelta().y() > 0 else -1)
            event.accept()
        else:
            super().wheelEvent(event)

    def _paint_at(self, row: int, col: int) -> None:
        if self.mask is None:
            return
        r = self.brush - 1
        self.mask[max(0, row - r) : row + r + 1, max(0, col - r) : col + r + 1] = self.tool == "brush"
        self.mask_changed.emit()
        self.update()

    def step_zoom(self, direction: int) -> None:
        """Next (direction > 0) or previous integer zoom."""
        current = self.zoom or max(1, int(self.scale()))
        bigger = [z for z in ZOOMS[1:] if z > current]
        smaller = [z for z in ZOOMS[1:] if z < current]
        if direction > 0 and bigger:
            self.zoom = bigger[0]
        elif direction < 0 and smaller:
            self.zoom = smaller[-1]
        self.update()


class CanvasPanel(QWidget):
    """The canvas with its toolbar: view mode, zoom, inpaint tools and actions."""

    mode_changed = Signal(str)
    inpaint_requested = Signal()
    detail_requested = Signal(int)  # number of high digits to keep

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = CanvasView(self)
        self.mode = QComboBox()
        for m in MODES:
            self.mode.addItem(MODE_LABELS[m], m)
        self.mode.setToolTip(
            "State: what the sampler has decided (tint = still undecided);\n"
            "Prediction: the model's guess of the clean sample;\n"
            "State map: masked / partial / visible"
        )
        self.mode.currentIndexChanged.connect(lambda _i: self.mode_changed.emit(self.current_mode()))
        self.zoom = QComboBox()
        for z in ZOOMS:
            self.zoom.addItem("Fit" if z == 0 else f"{z * 100}%", z)
        self.zoom.currentIndexChanged.connect(self._zoom_chosen)
        self.brush = QToolButton(text="Brush", checkable=True)
        self.eraser = QToolButton(text="Eraser", checkable=True)
        self.brush.setToolTip("Paint the region to regenerate (B)")
        self.eraser.setToolTip("Erase from the inpaint mask (E)")
        tools = QButtonGroup(self)
        tools.setExclusive(False)
        for button, name in ((self.brush, "brush"), (self.eraser, "eraser")):
            tools.addButton(button)
            button.toggled.connect(lambda on, n=name: self._tool(n, on))
        self.size = QSpinBox(minimum=1, maximum=16, value=2, suffix=" px")
        self.size.setToolTip("Brush size (pixels)")
        self.size.valueChanged.connect(lambda v: setattr(self.view, "brush", v))
        self.clear = QToolButton(text="Clear")
        self.clear.clicked.connect(self.view.clear_mask)
        self.inpaint = QPushButton("Inpaint")
        self.inpaint.setToolTip("Regenerate only the painted region of the selected sample")
        self.inpaint.clicked.connect(self.inpaint_requested)
        self.keep = QSpinBox(minimum=1, maximum=1, value=1)
        self.keep.setPrefix("keep ")
        self.keep.setSuffix(" digit(s)")
        self.keep.setToolTip("High digits of every pixel to keep")
        self.detail = QPushButton("Regenerate detail")
        self.detail.setToolTip(
            "Keep the high digits of every pixel (the coarse image) and resample the rest\n"
            "(only possible with Prime, ell > 1)"
        )
        self.detail.clicked.connect(lambda: self.detail_requested.emit(self.keep.value()))
        self.hover = QLabel(" ")
        self.hover.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        # two rows of tools; each toolbar overflows into a menu on narrow windows
        bar = QToolBar()
        bar.setObjectName("canvasView")
        for w in (QLabel("View "), self.mode, QLabel(" Zoom "), self.zoom):
            bar.addWidget(w)
        bar.addSeparator()
        for w in (self.keep, self.detail):
            bar.addWidget(w)
        edit = QToolBar()
        edit.setObjectName("canvasInpaint")
        for w in (QLabel("Inpaint mask "), self.brush, self.eraser, self.size, self.clear, self.inpaint):
            edit.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(bar)
        layout.addWidget(edit)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.hover)

    def current_mode(self) -> str:
        """The selected view mode (one of ``render.MODES``)."""
        return self.mode.currentData()

    def set_mode(self, mode: str) -> None:
        """Select a view mode."""
        i = self.mode.findData(mode)
        if i >= 0:
            self.mode.setCurrentIndex(i)

    def set_ell(self, ell: int) -> None:
        """Adapt the detail controls to the model's digits per token."""
        self.keep.setMaximum(max(1, ell - 1))
        self.detail.setEnabled(ell > 1)
        self.keep.setEnabled(ell > 1)

    def _zoom_chosen(self, _index: int) -> None:
        self.view.zoom = self.zoom.currentData()
        self.view.update()

    def _tool(self, name: str, on: bool) -> None:
        if on:
            other = self.eraser if name == "brush" else self.brush
            other.setChecked(False)
            self.view.tool = name
        elif self.view.tool == name:
            self.view.tool = ""
        self.view.setCursor(Qt.CursorShape.CrossCursor if self.view.tool else Qt.CursorShape.ArrowCursor)


__all__ = ["CanvasPanel", "CanvasView"]
