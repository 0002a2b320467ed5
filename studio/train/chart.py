"""A small QPainter line chart for live training curves (loss, validation bound, learning rate)."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


def _fmt(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) < 0.01 or abs(value) >= 10000:
        return f"{value:.1e}"
    return f"{value:.3g}"


class LineChart(QWidget):
    """One series of (x, y) points drawn as a line with min/max labels; cheap to append to.

    ``points`` is public for tests. Painting strides over long series (at most ~2 points per
    pixel), so a 100k-step run stays cheap to draw.
    """

    def __init__(
        self, title: str, unit: str = "", color: str = "#2d7dd2", dots: bool = False, parent=None
    ) -> None:
        super().__init__(parent)
        self.title = title
        self.unit = unit
        self.color = QColor(color)
        self.dots = dots
        self.points: list[tuple[float, float]] = []
        self.x_max: float | None = None
        self.setMinimumSize(150, 110)
        self.setToolTip(title)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        """Room for a readable curve."""
        return QSize(260, 150)

    def clear(self) -> None:
        """Forget all points."""
        self.points.clear()
        self.update()

    def add(self, x: float, y: float) -> None:
        """Append a point (non-finite values are skipped) and schedule a repaint."""
        if y is None or not math.isfinite(y):
            return
        self.points.append((float(x), float(y)))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Axes box, the curve, the last value and the y range."""
        p = QPainter(self)
        try:
            self._paint(p)
        finally:
            p.end()  # a painter left active after an exception takes Qt down

    def _paint(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text = pal.color(QPalette.ColorRole.WindowText)
        grid = QColor(text)
        grid.setAlpha(50)
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        fm = p.fontMetrics()
        h_text = fm.height()
        last = f"{_fmt(self.points[-1][1])}{self.unit}" if self.points else ""
        p.setPen(text)
        room = self.width() - 12 - (fm.horizontalAdvance(last) + 8 if last else 0)
        title = fm.elidedText(self.title, Qt.TextElideMode.ElideRight, max(room, 10))
        p.drawText(QRectF(6, 2, self.width() - 12, h_text), Qt.AlignmentFlag.AlignLeft, title)
        if last:
            bold = p.font()
            bold.setBold(True)
            p.setFont(bold)
            p.setPen(self.color)
            p.drawText(QRectF(6, 2, self.width() - 12, h_text), Qt.AlignmentFlag.AlignRight, last)
            bold.setBold(False)
            p.setFont(bold)
            p.setPen(text)
        plot = QRectF(44, h_text + 6, max(10, self.width() - 52), max(10, self.height() - 2 * h_text - 12))
        p.setPen(QPen(grid, 1))
        p.drawRect(plot)
        if not self.points:
            p.setPen(grid.darker(50) if grid.lightness() > 128 else text)
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "no data yet")
            return
        xs = [pt[0] for pt in self.points]
        ys = [pt[1] for pt in self.points]
        x0, x1 = min(xs), max(max(xs), self.x_max or 0)
        y0, y1 = min(ys), max(ys)
        if y1 - y0 < 1e-12:
            y0, y1 = y0 - 0.5 * (abs(y0) or 1), y1 + 0.5 * (abs(y1) or 1)
        if x1 - x0 < 1e-12:
            x1 = x0 + 1

        def to_px(x: float, y: float) -> QPointF:
            return QPointF(
                plot.left() + (x - x0) / (x1 - x0) * plot.width(),
                plot.bottom() - (y - y0) / (y1 - y0) * plot.height(),
            )

        stride = max(1, len(self.points) // max(1, int(2 * plot.width())))
        shown = self.points[::stride]
        if shown[-1] is not self.points[-1]:
            shown.append(self.points[-1])
        p.setPen(text)
        small = p.font()
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.85))
        p.setFont(small)
        p.drawText(QRectF(0, plot.top() - 2, 42, h_text), Qt.AlignmentFlag.AlignRight, _fmt(y1))
        p.drawText(QRectF(0, plot.bottom() - h_text + 2, 42, h_text), Qt.AlignmentFlag.AlignRight, _fmt(y0))
        p.drawText(QRectF(plot.left(), plot.bottom() + 2, 80, h_text), Qt.AlignmentFlag.AlignLeft, f"{x0:g}")
        p.drawText(
            QRectF(plot.right() - 120, plot.bottom() + 2, 120, h_text),
            Qt.AlignmentFlag.AlignRight,
            f"step {x1:g}",
        )
        pen = QPen(self.color, 1.6)
        p.setPen(pen)
        if len(shown) > 1:
            path = QPainterPath(to_px(*shown[0]))
            for pt in shown[1:]:
                path.lineTo(to_px(*pt))
            p.drawPath(path)
        if self.dots or len(shown) == 1:
            p.setBrush(self.color)
            for pt in shown:
                p.drawEllipse(to_px(*pt), 2.5, 2.5)
