"""The timeline and its strip chart.

A slider over every step, step/play controls, a strip chart of digits revealed
per step (idle steps marked; the scale and the sampler's strategy in its corner) and NFE / idle
counters; the label names the digits the current step revealed.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.render import num

SPEEDS = ((0.25, "0.25x"), (0.5, "0.5x"), (1.0, "1x"), (2.0, "2x"), (4.0, "4x"), (8.0, "8x"))
BASE_FPS = 12.0  # steps per second at 1x


class StripChart(QWidget):
    """Bars of digits revealed at each step; idle steps get a red tick; the current step a line."""

    clicked = Signal(int)  # step 1..T

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(56)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.revealed: list[float] = []  # per step (index 0 = step 1), summed over samples
        self.idle: list[float] = []  # fraction of samples idle at that step
        self.steps = 0
        self.current = 0
        self.strategy = ""  # the reveal strategy of the run shown (drawn in the corner)

    def set_data(self, steps: int, revealed: list[float], idle: list[float]) -> None:
        """Replace the data (lists may be shorter than ``steps`` while sampling)."""
        self.steps, self.revealed, self.idle = steps, list(revealed), list(idle)
        self.update()

    def _bar_geometry(self) -> tuple[float, float]:
        margin = 4.0
        return margin, (self.width() - 2 * margin) / max(1, self.steps)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Draw bars, idle ticks and the cursor."""
        painter = QPainter(self)
        try:
            self._paint(painter)
        finally:
            painter.end()  # an exception must never leave the painter active (Qt would crash)

    def _paint(self, painter: QPainter) -> None:
        pal = self.palette()
        painter.fillRect(self.rect(), pal.alternateBase())
        if not self.steps:
            return
        x0, bw = self._bar_geometry()
        band = 11  # a band at the top for the scale and the strategy
        h = self.height() - 10 - band
        top = max(self.revealed) if self.revealed else 1.0
        top = top or 1.0
        bar = pal.highlight().color()
        idle_colour = QColor(220, 50, 50)
        # one column per pixel at most: steps that share a pixel are binned (max revealed, max idle)
        columns = min(len(self.revealed), max(1, int(bw * len(self.revealed))))
        per = len(self.revealed) / max(1, columns)
        width = max(1.0, per * bw - (1 if per * bw > 3 else 0))
        for c in range(columns):
            a, b = int(c * per), max(int(c * per) + 1, int((c + 1) * per))
            value = max(self.revealed[a:b], default=0.0)
            if value > 0:
                bh = max(1.0, h * value / top)
                painter.fillRect(QRectF(x0 + a * bw, 2 + band + h - bh, width, bh), bar)
            frac = max(self.idle[a:b], default=0.0)
            if frac > 0:
                idle_colour.setAlphaF(0.35 + 0.65 * min(1.0, frac))
                painter.fillRect(QRectF(x0 + a * bw, self.height() - 7, max(1.0, per * bw), 6), idle_colour)
        if self.current > 0:
            painter.setPen(QPen(pal.text().color(), 1))
            x = x0 + (self.current - 0.5) * bw
            painter.drawLine(int(x), 0, int(x), self.height())
        # the scale: the tallest bar's count of digits, and which strategy revealed them
        painter.setPen(pal.placeholderText().color())
        font = painter.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        caption = f"{num(top)} digits/step max" + (f" \u00b7 {self.strategy}" if self.strategy else "")
        painter.drawText(
            self.rect().adjusted(4, 1, -4, 0),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop,
            caption,
        )

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Seek to the clicked step."""
        if self.steps:
            x0, bw = self._bar_geometry()
            self.clicked.emit(max(0, min(self.steps, int((event.position().x() - x0) // bw) + 1)))

    mouseMoveEvent = mousePressEvent  # noqa: N815 - drag to scrub


class Timeline(QWidget):
    """Slider 0..T, step/play controls with speed, strip chart and counters."""

    step_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Step (Left/Right, Home/End)")
        self.slider.valueChanged.connect(self._moved)
        icon = self.style().standardIcon
        px = QStyle.StandardPixmap
        self.icons = {"play": icon(px.SP_MediaPlay), "pause": icon(px.SP_MediaPause)}
        self.first = QToolButton(icon=icon(px.SP_MediaSkipBackward))
        self.prev = QToolButton(icon=icon(px.SP_MediaSeekBackward))
        self.play = QToolButton(icon=self.icons["play"])
        self.next = QToolButton(icon=icon(px.SP_MediaSeekForward))
        self.last = QToolButton(icon=icon(px.SP_MediaSkipForward))
        self.first.setToolTip("First step (Home)")
        self.prev.setToolTip("Previous step (Left)")
        self.play.setToolTip("Play / pause (Space)")
        self.next.setToolTip("Next step (Right)")
        self.last.setToolTip("Last step (End)")
        self.first.clicked.connect(lambda: self.seek(0))
        self.prev.clicked.connect(lambda: self.step_by(-1))
        self.next.clicked.connect(lambda: self.step_by(1))
        self.last.clicked.connect(lambda: self.seek(self.slider.maximum()))
        self.play.clicked.connect(self.toggle_play)
        self.speed = QComboBox()
        for value, label in SPEEDS:
            self.speed.addItem(label, value)
        self.speed.setCurrentIndex(2)
        self.speed.setToolTip("Playback speed")
        self.speed.currentIndexChanged.connect(self._speed_changed)
        self.label = QLabel("step 0/0")
        # its share of the row does not follow its text: the slider beside it never moves
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.label.setMinimumWidth(self.label.fontMetrics().horizontalAdvance("step 4096/4096"))
        self.counters = QLabel("")
        self.counters.setMinimumWidth(1)  # long counters are cut, they never widen the window
        self.counters.setToolTip(
            "NFE: network calls actually made (cached steps are free).\nIdle: steps where nothing changed."
        )
        self.chart = StripChart()
        self.chart.clicked.connect(self.seek)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self._speed_changed()

        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        for w in (self.first, self.prev, self.play, self.next, self.last, self.speed):
            controls.addWidget(w)
        controls.addWidget(self.slider, 3)
        controls.addWidget(self.label, 2)
        info = QHBoxLayout()
        info.setContentsMargins(0, 0, 0, 0)
        legend = QLabel(
            "<span style='color:#888'>\u2588 digits revealed \u00b7 "
            "<span style='color:#dc3232'>\u25ac</span> idle</span>"
        )
        legend.setToolTip(
            "Bars: digits revealed at each step (all samples).\n"
            "Red marks: idle steps, where nothing changed (darker = more samples idle)."
        )
        legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        info.addWidget(legend, 1)
        info.addWidget(self.counters)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(controls)
        layout.addWidget(self.chart)
        layout.addLayout(info)
        self.times: list[float] = []

    # ------------------------------------------------------------------ data
    def set_steps(
        self, steps: int, revealed: list[float], idle: list[float], done: int | None = None
    ) -> None:
        """Show a run of ``steps`` steps of which ``done`` are available (default: all recorded)."""
        done = len(revealed) if done is None else done
        self.chart.set_data(steps, revealed, idle)
        self.slider.blockSignals(True)
        self.slider.setRange(0, done)
        self.slider.blockSignals(False)
        self._update_label()

    def set_strategy(self, strategy: str) -> None:
        """Name the reveal strategy of the run shown (in the strip chart's corner)."""
        self.chart.strategy = strategy
        self.chart.update()

    def set_counters(self, nfe: float, idle: float, steps: int, seconds: float | None = None) -> None:
        """NFE and idle-step counters (means over samples)."""
        text = f"NFE <b>{num(nfe)}</b> \u00b7 idle steps <b>{num(idle)}</b>/{steps}"
        if seconds is not None:
            text += f" \u00b7 {seconds:.2f} s"
        self.counters.setText(text)

    def entries(self) -> int:
        """Number of steps in the strip chart (one entry per step)."""
        return len(self.chart.revealed)

    def value(self) -> int:
        """The current step."""
        return self.slider.value()

    # ------------------------------------------------------------------ navigation
    def seek(self, step: int) -> None:
        """Go to ``step`` (clamped)."""
        self.slider.setValue(max(0, min(self.slider.maximum(), int(step))))

    def show_live_step(self, step: int) -> None:
        """Follow a running job: slider, cursor and label at ``step`` without asking for a redraw."""
        self.slider.blockSignals(True)
        self.slider.setValue(max(0, min(self.slider.maximum(), int(step))))
        self.slider.blockSignals(False)
        self.chart.current = self.slider.value()
        self.chart.update()
        self._update_label()

    def step_by(self, delta: int) -> None:
        """Move by ``delta`` steps."""
        self.stop()
        self.seek(self.slider.value() + delta)

    def toggle_play(self) -> None:
        """Play from here (from the start if at the end) or pause."""
        if self.timer.isActive():
            self.stop()
            return
        if self.slider.value() >= self.slider.maximum():
            self.seek(0)
        self.play.setIcon(self.icons["pause"])
        self.timer.start()

    def stop(self) -> None:
        """Pause playback."""
        self.timer.stop()
        self.play.setIcon(self.icons["play"])

    def _tick(self) -> None:
        if self.slider.value() >= self.slider.maximum():
            self.stop()
        else:
            self.slider.setValue(self.slider.value() + 1)

    def _speed_changed(self) -> None:
        self.timer.setInterval(max(5, int(1000 / (BASE_FPS * self.speed.currentData()))))

    def _moved(self, value: int) -> None:
        self.chart.current = value
        self.chart.update()
        self._update_label()
        self.step_changed.emit(value)

    def _update_label(self) -> None:
        t = (
            f" \u00b7 t={self.times[self.slider.value()]:.3f}"
            if len(self.times) > self.slider.value()
            else ""
        )
        k = self.slider.value()
        revealed = self.chart.revealed
        count = f" \u00b7 {num(revealed[k - 1])} digits" if 0 < k <= len(revealed) else ""
        self.label.setText(f"step {k}/{self.chart.steps}{t}{count}")
        self.label.setToolTip(self.label.text())  # all of it where the row cuts it short
