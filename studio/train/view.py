"""The training panel's live view: progress, charts, sample previews, checkpoints and messages."""

from __future__ import annotations

import html
import math
import time
from typing import Any

import numpy as np
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from studio.enginelink import eng
from studio.train.chart import LineChart
from studio.train.runs import duration, studio_words


def image_grid(images: np.ndarray, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """uint8 (N, H, W, 1|3) -> one RGB (rows*H, cols*W, 3) array with a grey gap between items."""
    n, h, w, c = images.shape
    if c == 1:
        images = np.repeat(images, 3, axis=-1)
    cols = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    out = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, 3), 96, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        out[top : top + h, left : left + w] = images[i]
    return out


def tokens_image(tokens: Any, config: Any) -> QImage:
    """Image tokens (N, L) rendered exactly as the model sees them, one grid at 1:1."""
    grid = np.ascontiguousarray(image_grid(eng.tokens_to_images(tokens, config)))
    h, w = grid.shape[:2]
    return QImage(grid.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class PixelView(QWidget):
    """Shows a QImage enlarged by the largest whole factor that fits (crisp pixels, no smoothing)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image: QImage | None = None
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setMinimumSize(120, 100)

    def set_image(self, image: QImage | None) -> None:
        """Show ``image`` (None clears)."""
        self.image = image
        self.update()

    def scale(self) -> int:
        """The enlargement used for the current size."""
        if self.image is None or self.image.isNull():
            return 1
        return max(1, min(self.width() // self.image.width(), self.height() // self.image.height(), 32))

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        """The image, centred."""
        if self.image is None or self.image.isNull():
            return
        k = self.scale()
        w, h = self.image.width() * k, self.image.height() * k
        p = QPainter(self)
        try:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            p.drawImage(QRect((self.width() - w) // 2, (self.height() - h) // 2, w, h), self.image)
        finally:
            p.end()


def tokens_text(tokens: Any, tokenizer: Any = None) -> str:
    """Text tokens (N, L) decoded with the model's ``tokenizer`` (bytes by default), one sample per block."""
    tok = tokenizer if tokenizer is not None else eng.BYTES
    return "\n\u2500\u2500\u2500\u2500\n".join(eng.tokens_to_text(row, tok) for row in tokens)


def text_item(i: int, text: str, source: str = "", tokens: bool = False) -> str:
    """One text preview item: its number and source, the text, and its newline padding as one mark.

    Byte tokens: every character is one token (two to four for non-ASCII characters); a BPE
    model's preview text marks where each token ends with ``|`` (the report writes it).
    """
    body, pad = eng.split_padding(text, tokens)
    head = f"\u2500\u2500 {i + 1}" + (f" \u00b7 {source}" if source else "") + " \u2500\u2500"
    return f"{head}\n{body}" + (f"\u23ce\u00d7{pad} (padding)" if pad else "")


# Start-blocker texts that are the next step to take, not a problem (shown without red)
NEXT_STEPS = ("Choose a data folder", "Checking the data", "Check the data first", "Settings changed")


class TrainingView(QWidget):
    """Right-hand side of the Train tab. Buttons live here too, next to the progress they drive."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # resume offer for interrupted runs
        self.banner = QGroupBox("Unfinished training run")
        self.banner_text = QLabel()
        self.banner_text.setWordWrap(True)
        self.banner_resume = QPushButton("Resume it")
        self.banner_discard = QPushButton("Discard")
        bl = QHBoxLayout(self.banner)
        bl.addWidget(self.banner_text, 1)
        bl.addWidget(self.banner_resume)
        bl.addWidget(self.banner_discard)
        self.banner.hide()
        # controls
        self.start = QPushButton("Start training")
        self.start.setObjectName("generate")
        self.pause = QPushButton("Pause")
        self.pause.setToolTip(
            "Pause stops after the current step and writes a checkpoint; Resume continues from it "
            "with the same data order and random state."
        )
        self.resume = QPushButton("Resume")
        self.cancel = QPushButton("Stop and save")
        self.cancel.setToolTip("Stop after the current step and save the model so far into the library")
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setObjectName("trainReason")
        self.note = QLabel(
            "Pause = stop with a checkpoint, Resume = continue from it. Generating while training: "
            "the training pauses at a checkpoint, the generation runs, then training resumes by itself."
        )
        self.note.setWordWrap(True)
        self.open_model = QPushButton("Generate with it")
        self.open_model.setToolTip("Load the model this run saved and switch to the Generate tab")
        self.open_model.hide()
        # two rows, so the Train tab fits a 1366-px screen beside the docks
        buttons = QGridLayout()
        for i, b in enumerate((self.start, self.pause, self.resume, self.cancel, self.open_model)):
            # each button keeps its place when another appears or hides: nothing moves under the pointer
            keep = b.sizePolicy()
            keep.setRetainSizeWhenHidden(True)
            b.setSizePolicy(keep)
            buttons.addWidget(b, i // 3, i % 3)
        # progress
        self.status = QLabel("Idle.")
        self.status.setWordWrap(True)
        # status and throughput lines keep their space (two lines / one) whatever they say
        self.status.setMinimumHeight(2 * self.status.fontMetrics().lineSpacing())
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.rate = QLabel("")
        self.rate.setMinimumHeight(self.rate.fontMetrics().lineSpacing())
        # charts
        self.loss_chart = LineChart("Training loss", "nats/token", color="#2d7dd2")
        self.bpd_chart = LineChart("Validation bound", "bits/dim", color="#d2552d", dots=True)
        self.lr_chart = LineChart("Learning rate", "", color="#3a9e5c")
        charts = QHBoxLayout()
        for c in (self.loss_chart, self.bpd_chart, self.lr_chart):
            charts.addWidget(c)
        # previews
        self.preview_title = QLabel("Data preview: items as the model will see them")
        self.preview_title.setWordWrap(True)
        self.preview_image = PixelView()
        self.preview_text = QPlainTextEdit()
        self.preview_text.setReadOnly(True)
        self.preview_stack = QStackedWidget()
        self.preview_stack.addWidget(self.preview_image)
        self.preview_stack.addWidget(self.preview_text)
        pbox = QGroupBox("Preview")
        pl = QVBoxLayout(pbox)
        pl.addWidget(self.preview_title)
        pl.addWidget(self.preview_stack, 1)
        # checkpoints and messages
        self.checkpoints = QListWidget()
        self.log = QListWidget()
        for lst in (self.checkpoints, self.log):
            lst.setWordWrap(True)
            lst.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        cbox = QGroupBox("Checkpoints")
        QVBoxLayout(cbox).addWidget(self.checkpoints)
        lbox = QGroupBox("Messages")
        QVBoxLayout(lbox).addWidget(self.log)
        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(cbox)
        sl.addWidget(lbox)
        lower = QHBoxLayout()
        for widget, stretch in ((pbox, 3), (side, 2)):
            widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            lower.addWidget(widget, stretch)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.banner)
        layout.addLayout(buttons)
        layout.addWidget(self.reason)
        layout.addWidget(self.note)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(self.rate)
        layout.addLayout(charts, 3)
        layout.addLayout(lower, 3)

    # ------------------------------------------------------------------ helpers
    def say(self, text: str) -> None:
        """A timestamped line in the messages list (newest at the bottom)."""
        self.log.addItem(f"{time.strftime('%H:%M:%S')}  {studio_words(text)}")
        self.log.scrollToBottom()

    def set_reason(self, text: str | None) -> None:
        """Why Start is disabled, or nothing: red for a problem, plain for the next thing to do."""
        shown = html.escape(studio_words(text), quote=False) if text else ""  # reasons quote paths
        if text and not text.startswith(NEXT_STEPS):
            shown = f"<span style='color:#c0392b'>{shown}</span>"
        self.reason.setText(shown)
        self.reason.setVisible(bool(text))

    def reset(self, steps: int) -> None:
        """Empty charts and lists for a new run."""
        for c in (self.loss_chart, self.bpd_chart, self.lr_chart):
            c.clear()
            c.x_max = steps
        self.checkpoints.clear()
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.rate.setText("")

    def show_tokens(
        self, tokens: Any, config: Any, title: str, texts: tuple[str, ...] = (), sources: tuple[str, ...] = ()
    ) -> None:
        """Show image or text tokens (N, L) as the model sees them (``sources`` name data items)."""
        self.preview_title.setText(title)
        if config.modality == "image":
            self.preview_image.set_image(tokens_image(tokens, config) if len(tokens) else None)
            self.preview_image.setToolTip("\n".join(f"{i + 1}. {s}" for i, s in enumerate(sources)))
            self.preview_stack.setCurrentWidget(self.preview_image)
        else:
            if texts:
                bpe = getattr(config, "tokenizer", "") == "bpe"
                names = [sources[i] if i < len(sources) else "" for i in range(len(texts))]
                body = "\n".join(text_item(i, t, names[i], bpe) for i, t in enumerate(texts))
            else:
                body = tokens_text(tokens, eng.tokenizer_of(config))
            self.preview_text.setPlainText(body)
            self.preview_stack.setCurrentWidget(self.preview_text)

    def show_step(self, ev: Any) -> None:
        """Progress bar, ETA and throughput from a step event."""
        frac = ev.step / max(ev.steps, 1)
        self.progress.setValue(int(1000 * frac))
        self.progress.setFormat(f"step {ev.step} / {ev.steps}  ({frac:.0%})")
        parts = [f"ETA {duration(ev.eta_s)}" if ev.eta_s is not None else ""]
        if ev.tokens_per_s:
            parts.append(f"{ev.tokens_per_s:,.0f} tokens/s")
        if ev.elapsed_s is not None:
            parts.append(f"elapsed {duration(ev.elapsed_s)}")
        if ev.loss is not None:
            parts.append(f"loss {ev.loss:.4f}")
        self.rate.setText("  \u00b7  ".join(p for p in parts if p))
