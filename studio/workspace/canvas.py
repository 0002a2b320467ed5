"""The image canvas: crisp sample grid, zoom, hover and the inpaint mask.

A grid of samples drawn crisp (nearest neighbour), zoom, hover and the
inpaint mask (brush / eraser / clear, with undo and redo). Zoomed past the window, the canvas
scrolls (scrollbars, the wheel) and pans (drag with the middle button, or with the left one when
no mask tool is on). The gutters between samples are the canvas background, each sample framed by
a thin line, so they never read as "masked"; a legend under the canvas says what the colours of
the current view mean.

The canvas shows exactly the QImage it is given (``image()`` returns it, for tests); the mask is
painted on top, in token-grid coordinates (H, W) shared by all samples.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLineF, QPoint, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFrame,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.render import (
    CONFIDENCE_STOPS,
    MAP_MASKED,
    MAP_PARTIAL,
    MAP_VISIBLE,
    MODE_LABELS,
    MODES,
    TINT,
    grid_position,
)

HATCH_MIN_PX = 8  # hatch partial pixels once they are at least this many device pixels wide
ZOOMS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)  # 0 = fit
MASK_RGB = (255, 40, 90)  # the inpaint mask overlay (drawn at alpha 110)


class MaskEdit(QUndoCommand):
    """One change of the inpaint mask (a brush stroke, an erase, Clear): undo puts ``before`` back."""

    def __init__(self, view: CanvasView, before: np.ndarray, after: np.ndarray, text: str) -> None:
        super().__init__(text)
        self.view, self.before, self.after = view, before, after

    def redo(self) -> None:  # noqa: D102 - Qt override
        self.view._set_mask(self.after)

    def undo(self) -> None:  # noqa: D102 - Qt override
        self.view._set_mask(self.before)


def _swatch(rgb, text: str) -> str:
    r, g, b = (int(v) for v in rgb)
    return f"<span style='background-color:rgb({r},{g},{b});'>&nbsp;&nbsp;&nbsp;&nbsp;</span>&nbsp;{text}"


def legend_html(mode: str) -> str:
    """What the colours of view ``mode`` mean (rich text with colour swatches)."""
    sep = "&nbsp;&nbsp;&nbsp;"
    if mode == "map":
        return sep.join(
            (
                _swatch(MAP_MASKED, "masked"),
                _swatch(MAP_PARTIAL, "partial (brighter = more digits decided)"),
                _swatch(MAP_VISIBLE, "visible"),
            )
        )
    if mode == "confidence":
        return sep.join(_swatch(rgb, f"confidence {c:g}") for c, rgb in CONFIDENCE_STOPS)
    if mode == "prediction":
        return "The model's guess of the clean sample at this step"
    return sep.join(
        (
            _swatch(TINT, "undecided (the tint; partly decided pixels: part-tinted, hatched when zoomed in)"),
            _swatch(MASK_RGB, "inpaint mask"),
        )
    )


class CanvasView(QWidget):
    """Draws one QImage scaled by an integer factor (or fit) without smoothing."""

    hovered = Signal(int, int, int)  # sample, row, col (-1s when off the images)
    mask_changed = Signal()
    zoomed = Signal(int)  # the new zoom (0 = fit), after step_zoom / set_zoom
    zoom_changing = Signal(QPointF)  # just before a zoom: the point to keep still (-1, -1: centre)
    pan_requested = Signal(int, int)  # dx, dy in widget pixels (a scroll area moves its bars)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image = QImage()
        self._geometry = (1, 1, 1, None)  # n, h, w, columns
        self.zoom = 0
        self.tool = ""  # "", "brush", "eraser"
        self.brush = 3  # side of the square brush, in image pixels
        self.mask: np.ndarray | None = None  # (H, W) bool
        self.undo_stack = QUndoStack(self)  # mask edits (Edit > Undo / Redo, Ctrl+Z / Ctrl+Shift+Z)
        self.scrollable = False  # in a scroll area: zoomed past the viewport, grow and scroll
        self._stroke: np.ndarray | None = None  # the mask before the stroke being painted
        self._pan: QPoint | None = None  # global position of the last pan drag event
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
            self.undo_stack.clear()  # edits of a mask of another shape cannot come back
        self._update_extent()
        self.update()

    def clear(self) -> None:
        """Show nothing (the placeholder)."""
        self._image = QImage()
        self.update()

    def image(self) -> QImage:
        """The QImage currently shown (1 pixel per pixel, before zoom)."""
        return self._image

    def clear_mask(self, text: str = "Clear mask") -> None:
        """Erase the inpaint mask (one undoable step)."""
        if self.mask is not None and self.mask.any():
            before = self.mask.copy()
            self.undo_stack.push(MaskEdit(self, before, np.zeros_like(before), text))
        self.mask_changed.emit()
        self.update()

    def _set_mask(self, mask: np.ndarray) -> None:
        if self.mask is not None and self.mask.shape == mask.shape:
            self.mask[:] = mask  # in place: holders of the array see it change
        else:
            self.mask = mask.copy()
        self.mask_changed.emit()
        self.update()

    def set_zoom(self, zoom: int, anchor: QPointF | None = None) -> None:
        """Zoom to ``zoom`` times (0 = fit the window).

        ``anchor`` (widget position): the image point there stays under it (in a scroll area);
        None keeps the centre of what is in view.
        """
        self.zoom_changing.emit(anchor if anchor is not None else QPointF(-1, -1))
        self.zoom = zoom
        self._update_extent()
        self.update()
        self.zoomed.emit(zoom)

    def _update_extent(self) -> None:
        """In a scroll area, be as large as the zoomed image (scrollbars appear); fit: shrink."""
        if not self.scrollable:
            return
        if self.zoom and not self._image.isNull():
            s = self.scale()
            size = QSize(int(np.ceil(self._image.width() * s)), int(np.ceil(self._image.height() * s)))
        else:
            size = QSize(1, 1)
        if size != self.minimumSize():
            self.setMinimumSize(size)

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
        self._paint_gutters(painter, rect)
        if self.partial is not None and self.scale() * self.devicePixelRatioF() >= HATCH_MIN_PX:
            self._paint_hatch(painter, rect)
        if self.mask is not None and self.mask.any():
            self._paint_mask(painter, rect)

    def _cells(self, rect: QRectF) -> list[QRectF]:
        """Where each sample is drawn (the grid of :func:`studio.render.grid`, gap 1)."""
        n, h, w, cols = self._geometry
        s = self.scale()
        cols = min(cols or max(1, int(np.ceil(np.sqrt(n)))), n)
        out = []
        for i in range(n):
            r, c = divmod(i, cols)
            out.append(QRectF(rect.x() + c * (w + 1) * s, rect.y() + r * (h + 1) * s, w * s, h * s))
        return out

    def _paint_gutters(self, painter: QPainter, rect: QRectF) -> None:
        """Gaps between samples in the canvas background, each sample framed by a thin line."""
        n, _h, _w, _cols = self._geometry
        if n <= 1:
            return
        cells = self._cells(rect)
        background = self.palette().base()
        painter.save()
        painter.setClipRect(rect)
        clip = painter.clipRegion()
        for cell in cells:
            clip = clip.subtracted(cell.toAlignedRect())
        painter.setClipRegion(clip)
        painter.fillRect(rect, background)
        painter.restore()
        if self.scale() * self.devicePixelRatioF() >= 3:  # a frame only where the gap is visible
            pal = self.palette()  # a line that stands out from the background in either theme
            line = pal.mid().color() if pal.base().color().lightness() >= 128 else pal.light().color()
            painter.setPen(QPen(line, 0))
            for cell in cells:
                painter.drawRect(cell.adjusted(-0.5, -0.5, 0.5, 0.5))

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
        _n, h, w, _cols = self._geometry
        overlay = np.zeros((h, w, 4), dtype=np.uint8)
        overlay[self.mask] = (*MASK_RGB, 110)
        img = QImage(overlay.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        for cell in self._cells(rect):
            painter.drawImage(cell, img, QRectF(img.rect()))

    # ------------------------------------------------------------------ mouse
    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Hover, brush strokes and panning."""
        if self._pan is not None:
            now = event.globalPosition().toPoint()
            delta, self._pan = now - self._pan, now
            self.pan_requested.emit(-delta.x(), -delta.y())
            return
        hit = self.locate(event.position().toPoint())
        if hit is None:
            self.hovered.emit(-1, -1, -1)
        else:
            self.hovered.emit(*hit)
            if self.tool and self._stroke is not None and event.buttons() & Qt.MouseButton.LeftButton:
                self._paint_at(hit[1], hit[2])

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Start a brush stroke, or a pan (middle button; left button with no mask tool)."""
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and not self.tool):
            if self.scrollable and self.zoom:
                self._pan = event.globalPosition().toPoint()
                self.setCursor(Qt.CursorShape.ClosedHandCursor)
            super().mousePressEvent(event)
            return
        if button == Qt.MouseButton.LeftButton and self.mask is not None:
            self._stroke = self.mask.copy()
            hit = self.locate(event.position().toPoint())
            if hit is not None:
                self._paint_at(hit[1], hit[2])

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        """End a stroke (one undoable edit) or a pan."""
        if self._pan is not None:
            self._pan = None
            self.setCursor(Qt.CursorShape.CrossCursor if self.tool else Qt.CursorShape.ArrowCursor)
        before, self._stroke = self._stroke, None
        if before is not None and self.mask is not None and not np.array_equal(before, self.mask):
            text = "Brush stroke" if self.tool == "brush" else "Erase"
            self.undo_stack.push(MaskEdit(self, before, self.mask.copy(), text))
        super().mouseReleaseEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Hover ends."""
        self.hovered.emit(-1, -1, -1)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Ctrl+wheel zooms."""
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.step_zoom(1 if event.angleDelta().y() > 0 else -1, event.position())
            event.accept()
        else:
            super().wheelEvent(event)

    def _paint_at(self, row: int, col: int) -> None:
        """Paint (or erase) a square of ``brush`` x ``brush`` image pixels around (row, col)."""
        if self.mask is None or not self.tool:
            return
        top, left = row - (self.brush - 1) // 2, col - (self.brush - 1) // 2
        rows = slice(max(0, top), max(0, top + self.brush))
        cols = slice(max(0, left), max(0, left + self.brush))
        self.mask[rows, cols] = self.tool == "brush"
        self.mask_changed.emit()
        self.update()

    def step_zoom(self, direction: int, anchor: QPointF | None = None) -> None:
        """Next (direction > 0) or previous integer zoom (about ``anchor``, see :meth:`set_zoom`)."""
        current = self.zoom or max(1, int(self.scale()))
        bigger = [z for z in ZOOMS[1:] if z > current]
        smaller = [z for z in ZOOMS[1:] if z < current]
        if direction > 0 and bigger:
            self.set_zoom(bigger[0], anchor)
        elif direction < 0 and smaller:
            self.set_zoom(smaller[-1], anchor)


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
        self.mode.currentIndexChanged.connect(self._mode_chosen)
        self.zoom = QComboBox()
        for z in ZOOMS:
            self.zoom.addItem("Fit" if z == 0 else f"{z * 100}%", z)
        self.zoom.currentIndexChanged.connect(self._zoom_chosen)
        self.view.zoomed.connect(self._zoom_shown)
        self.view.zoom_changing.connect(self._zoom_changing)
        self._anchor: tuple[float, float, float, float] | None = None
        # zoomed in, the canvas scrolls: scrollbars, the wheel, drag to pan
        self.scroll = QScrollArea()
        self.scroll.setObjectName("canvasScroll")
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidgetResizable(True)
        self.scroll.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.scroll.setMinimumSize(200, 200)
        self.scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the canvas itself takes focus
        self.scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.view.scrollable = True
        self.view.setMinimumSize(1, 1)
        self.scroll.setWidget(self.view)
        self.view.pan_requested.connect(self._pan)
        self.brush = QToolButton(text="Brush", checkable=True)
        self.eraser = QToolButton(text="Eraser", checkable=True)
        self.brush.setToolTip("Paint the region to regenerate (B)")
        self.eraser.setToolTip("Erase from the inpaint mask (E)")
        tools = QButtonGroup(self)
        tools.setExclusive(False)
        for button, name in ((self.brush, "brush"), (self.eraser, "eraser")):
            tools.addButton(button)
            button.toggled.connect(lambda on, n=name: self._tool(n, on))
        self.size = QSpinBox(minimum=1, maximum=16, value=self.view.brush, suffix=" px")
        self.size.setToolTip("Brush size: the brush paints squares of this many image pixels a side")
        self.size.valueChanged.connect(lambda v: setattr(self.view, "brush", v))
        self.size_label = QLabel(" Size ")
        self.size_label.setBuddy(self.size)
        self.clear = QToolButton(text="Clear")
        self.clear.setToolTip("Erase the whole inpaint mask (Ctrl+Z brings it back)")
        self.clear.clicked.connect(lambda: self.view.clear_mask())
        self.keep_mask = QToolButton(text="Keep mask", checkable=True)
        self.keep_mask.setToolTip(
            "Keep the mask after Inpaint (to inpaint the same region again);\n"
            "off: the mask is cleared once the inpainting is done (Ctrl+Z brings it back)"
        )
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
        # one line whatever it says: long hover text is cut at the edge, never widens the window
        self.hover.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.legend = QLabel()
        self.legend.setObjectName("canvasLegend")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setToolTip("What the colours of this view mean")
        # never widens the window: a long legend wraps onto a second line (its tooltip has it all)
        self.legend.setWordWrap(True)
        self.legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._show_legend()

        # three short rows of tools, so none overflows into a chevron menu beside the docks on a
        # 1366-px screen: what is shown, what to regenerate, the inpaint mask
        bar = QToolBar()
        bar.setObjectName("canvasView")
        for w in (QLabel("View "), self.mode, QLabel(" Zoom "), self.zoom):
            bar.addWidget(w)
        regenerate = QToolBar()
        regenerate.setObjectName("canvasRegenerate")
        for w in (self.keep, self.detail):
            regenerate.addWidget(w)
        regenerate.addSeparator()
        for w in (self.inpaint, self.keep_mask):
            regenerate.addWidget(w)
        edit = QToolBar()
        edit.setObjectName("canvasInpaint")
        for w in (QLabel("Inpaint mask "), self.brush, self.eraser, self.size_label, self.size, self.clear):
            edit.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(bar)
        layout.addWidget(regenerate)
        layout.addWidget(edit)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.legend)
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
        self.view.set_zoom(self.zoom.currentData())

    def _zoom_changing(self, anchor: QPointF) -> None:
        """Remember which image point is at the anchor (or the centre of the view) before a zoom."""
        view, viewport = self.view, self.scroll.viewport()
        offset = view.pos()  # where the canvas sits in the viewport (<= 0 when scrolled)
        if anchor.x() < 0 or anchor.y() < 0:
            anchor = QPointF(viewport.width() / 2 - offset.x(), viewport.height() / 2 - offset.y())
        rect, s = view.target_rect(), view.scale()
        self._anchor = (
            (anchor.x() - rect.x()) / s,
            (anchor.y() - rect.y()) / s,
            anchor.x() + offset.x(),
            anchor.y() + offset.y(),
        )

    def _keep_anchor(self) -> None:
        """Scroll so that the remembered image point is where it was in the viewport."""
        if self._anchor is None or not self.view.zoom:
            return
        ix, iy, vx, vy = self._anchor
        rect, s = self.view.target_rect(), self.view.scale()
        self.scroll.horizontalScrollBar().setValue(round(rect.x() + ix * s - vx))
        self.scroll.verticalScrollBar().setValue(round(rect.y() + iy * s - vy))

    def _zoom_shown(self, zoom: int) -> None:
        """The zoom changed (Ctrl+wheel, Ctrl+=, the combo box): keep the anchor, sync the combo."""
        i = self.zoom.findData(zoom)
        if i >= 0 and i != self.zoom.currentIndex():
            self.zoom.blockSignals(True)
            self.zoom.setCurrentIndex(i)
            self.zoom.blockSignals(False)
        self._keep_anchor()  # growing resizes the canvas at once; shrinking once laid out:
        QTimer.singleShot(0, self, self._keep_anchor)

    def _pan(self, dx: int, dy: int) -> None:
        for bar, d in ((self.scroll.horizontalScrollBar(), dx), (self.scroll.verticalScrollBar(), dy)):
            bar.setValue(bar.value() + d)

    def _mode_chosen(self, _index: int) -> None:
        self._show_legend()
        self.mode_changed.emit(self.current_mode())

    def _show_legend(self) -> None:
        html = legend_html(self.current_mode())
        self.legend.setText(html)
        self.legend.setToolTip(html)

    def _tool(self, name: str, on: bool) -> None:
        if on:
            other = self.eraser if name == "brush" else self.brush
            other.setChecked(False)
            self.view.tool = name
        elif self.view.tool == name:
            self.view.tool = ""
        self.view.setCursor(Qt.CursorShape.CrossCursor if self.view.tool else Qt.CursorShape.ArrowCursor)


__all__ = ["CanvasPanel", "CanvasView"]
