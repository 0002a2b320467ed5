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


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        v = first + len(ticks) * step
    return ticks


def axis_range(values: list[float]) -> tuple[float, float]:
    """A padded (lo, hi) for ``values``: one value (or equal ones) gets room on both sides."""
    lo, hi = min(values), max(values)
    spread = hi - lo
    pad = 0.06 * spread if spread > 1e-12 * max(1.0, abs(hi)) else (0.05 * abs(lo) if lo else 1.0)
    return lo - pad, hi + pad


def step_range(steps: list[float], last: float | None = None) -> tuple[float, float]:
    """The x axis: from step 0 to the run's last step (or the last point), so charts line up."""
    hi = max(max(steps), last or 0.0)
    lo = min(0.0, min(steps))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


class LineChart(QWidget):
    """One series of (x, y) points: a titled line chart with round ticks; cheap to append to.

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
        self.setMinimumSize(150, 150)  # three side by side must fit a 1366-px screen
        self.setToolTip(title)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        """Room for a readable curve."""
        return QSize(320, 200)

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

    def ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((x0, x1), (y0, y1)) the axes show: padded, so a single point sits inside the box."""
        xs, ys = [pt[0] for pt in self.points], [pt[1] for pt in self.points]
        return step_range(xs, self.x_max), axis_range(ys)

    def _paint(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text = pal.color(QPalette.ColorRole.WindowText)
        grid = QColor(text)
        grid.setAlpha(40)
        frame = QColor(text)
        frame.setAlpha(90)
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        bold = p.font()
        bold.setBold(True)
        small = p.font()
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.9))
        p.setFont(bold)
        fm = p.fontMetrics()
        h_text = fm.height()
        p.setPen(text)
        head = self.title + (f" ({self.unit})" if self.unit else "")
        if fm.horizontalAdvance(head) > self.width() - 12:
            head = self.title  # the unit also follows the last value below
        title = fm.elidedText(head, Qt.TextElideMode.ElideRight, max(self.width() - 12, 10))
        p.drawText(QRectF(6, 3, self.width() - 12, h_text), Qt.AlignmentFlag.AlignLeft, title)
        p.setFont(small)
        sm = p.fontMetrics()
        h_small = sm.height()
        if self.points:  # the latest value, in the series' colour, on a line of its own
            p.setPen(self.color)
            last = f"now {_fmt(self.points[-1][1])} {self.unit}".strip()
            p.drawText(QRectF(6, 3 + h_text, self.width() - 12, h_small), Qt.AlignmentFlag.AlignLeft, last)
        labels = [_fmt(v) for v in nice_ticks(*self.ranges()[1], 5)] if self.points else ["0"]
        left = 10 + max(sm.horizontalAdvance(t) for t in labels)
        top = h_text + h_small + 8
        plot = QRectF(
            left,
            top,
            max(10, self.width() - left - 10),
            max(10, self.height() - top - 2 * h_small - 6),
        )
        p.setPen(QPen(frame, 1))
        p.drawRect(plot)
        if not self.points:
            p.setPen(text)
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "no data yet")
            return
        (x0, x1), (y0, y1) = self.ranges()

        def to_px(x: float, y: float) -> QPointF:
            return QPointF(
                plot.left() + (x - x0) / (x1 - x0) * plot.width(),
                plot.bottom() - (y - y0) / (y1 - y0) * plot.height(),
            )

        rows = max(3, min(6, int(plot.height() // (1.6 * h_small))))
        cols = max(2, min(6, int(plot.width() // (4.5 * sm.horizontalAdvance("0000")))))
        for y in nice_ticks(y0, y1, rows):
            py = to_px(x0, y).y()
            p.setPen(QPen(grid, 1))
            p.drawLine(QPointF(plot.left(), py), QPointF(plot.right(), py))
            p.setPen(text)
            p.drawText(QRectF(0, py - h_small / 2, left - 4, h_small), Qt.AlignmentFlag.AlignRight, _fmt(y))
        for x in nice_ticks(x0, x1, cols):
            px = to_px(x, y0).x()
            p.setPen(QPen(grid, 1))
            p.drawLine(QPointF(px, plot.top()), QPointF(px, plot.bottom()))
            p.setPen(text)
            p.drawText(
                QRectF(px - 40, plot.bottom() + 2, 80, h_small), Qt.AlignmentFlag.AlignHCenter, f"{x:g}"
            )
        p.drawText(
            QRectF(plot.left(), plot.bottom() + 2 + h_small, plot.width(), h_small),
            Qt.AlignmentFlag.AlignHCenter,
            "step",
        )
        stride = max(1, len(self.points) // max(1, int(2 * plot.width())))
        shown = self.points[::stride]
        if shown[-1] is not self.points[-1]:
            shown.append(self.points[-1])
        p.setClipRect(plot.adjusted(-4, -4, 4, 4))  # a dot on the edge stays whole
        p.setPen(QPen(self.color, 1.8))
        if len(shown) > 1:
            path = QPainterPath(to_px(*shown[0]))
            for pt in shown[1:]:
                path.lineTo(to_px(*pt))
            p.drawPath(path)
        if self.dots or len(shown) == 1:
            p.setBrush(self.color)
            for pt in shown:
                p.drawEllipse(to_px(*pt), 3.0, 3.0)
