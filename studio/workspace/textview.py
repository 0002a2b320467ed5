"""The text view.

Samples with tokens coloured by state (masked / partial with candidates /
visible), or by the model's confidence in each revealed token; hover outlines one token (where
it starts and ends: a BPE token is often several characters) and shows its digits and what they
still allow; select a span to regenerate it.
"""

from __future__ import annotations

import bisect

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from studio.render import (
    CONFIDENCE_STOPS,
    MASKED,
    PARTIAL,
    TEXT_COLOURS_DARK,
    TEXT_COLOURS_LIGHT,
    VISIBLE,
)


def text_legend_html(dark: bool, by_confidence: bool = False) -> str:
    """What the colours of the text view mean, in the current theme's colours."""
    colours = TEXT_COLOURS_DARK if dark else TEXT_COLOURS_LIGHT

    def chip(kind: int, text: str) -> str:
        fg, bg = colours[kind]
        back = f"background-color:{bg};" if bg else ""
        return f"<span style='color:{fg};{back}'>&nbsp;{text}&nbsp;</span>"

    parts = [chip(VISIBLE, "visible"), chip(PARTIAL, "partial"), chip(MASKED, "\u2591 masked")]
    if by_confidence:
        for c, (r, g, b) in CONFIDENCE_STOPS:  # the pale backgrounds of confidence_backgrounds
            r, g, b = (int(0.55 * v + 0.45 * 255) for v in (r, g, b))
            parts.append(
                f"<span style='color:#111111;background-color:rgb({r},{g},{b});'>&nbsp;{c:g}&nbsp;</span>"
            )
    return " ".join(parts)


class TokenText(QTextEdit):
    """Read-only rich text that knows which character belongs to which (sample, token)."""

    hovered = Signal(int, int)  # sample, token (-1, -1 when none)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMouseTracking(True)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(font)
        self._starts: list[int] = []  # document position where each token starts
        self._owners: list[tuple[int, int]] = []  # (sample, token) per entry of _starts
        self._ends: list[int] = []  # document position after each token
        self._where: dict[tuple[int, int], int] = {}  # (sample, token) -> entry of _starts
        self.highlighted: tuple[int, int] | None = None  # the token outlined (hovered)
        self.dark = False

    def set_segments(
        self, samples: list[list[tuple[str, int, str]]], backgrounds: list[list[str | None]] | None = None
    ) -> None:
        """Show samples given as ``render.Renderer.text_segments`` lists.

        backgrounds: per sample, a background colour per token (None: the state's colours), e.g.
        the confidence colours of :func:`studio.render.confidence_backgrounds`.
        """
        colours = TEXT_COLOURS_DARK if self.dark else TEXT_COLOURS_LIGHT
        formats = {}
        for kind, (fg, bg) in colours.items():
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(fg))
            if bg:
                fmt.setBackground(QColor(bg))
            formats[kind] = fmt
        header = QTextCharFormat()
        header.setForeground(QColor("#888888"))
        self.clear()
        cursor = QTextCursor(self.document())
        starts, owners, ends = [], [], []
        for n, segments in enumerate(samples):
            if len(samples) > 1:
                cursor.insertText(("\n\n" if n else "") + f"\u2014 sample {n + 1} \u2014\n", header)
            shades = backgrounds[n] if backgrounds is not None and n < len(backgrounds) else None
            for i, (text, kind, _tip) in enumerate(segments):
                starts.append(cursor.position())
                owners.append((n, i))
                fmt = formats.get(kind, formats[VISIBLE])
                if shades is not None and i < len(shades) and shades[i] is not None:
                    fmt = QTextCharFormat(fmt)
                    fmt.setBackground(QColor(shades[i]))
                    fmt.setForeground(QColor("#111111"))
                cursor.insertText(text, fmt)
                ends.append(cursor.position())
        self._starts, self._owners, self._ends = starts, owners, ends
        self._where = {owner: k for k, owner in enumerate(owners)}
        if self.highlighted is not None:
            self.highlight(*self.highlighted)

    def token_span(self, sample: int, token: int) -> tuple[int, int] | None:
        """Document positions (start, end) of one token's text, None if it is not shown."""
        k = self._where.get((sample, token))
        return None if k is None else (self._starts[k], self._ends[k])

    def highlight(self, sample: int, token: int) -> None:
        """Outline one token (its boundaries: where it starts and ends); (-1, -1) clears."""
        span = self.token_span(sample, token)
        self.highlighted = (sample, token) if span is not None else None
        if span is None:
            self.setExtraSelections([])
            return
        sel = QTextEdit.ExtraSelection()
        cursor = QTextCursor(self.document())
        cursor.setPosition(span[0])
        cursor.setPosition(span[1], QTextCursor.MoveMode.KeepAnchor)
        sel.cursor = cursor
        fmt = QTextCharFormat()
        fmt.setBackground(QColor("#3d6fd6" if self.dark else "#b9d0ff"))
        fmt.setForeground(QColor("#ffffff" if self.dark else "#111111"))
        fmt.setFontUnderline(True)
        sel.format = fmt
        self.setExtraSelections([sel])

    def token_at(self, position: int) -> tuple[int, int] | None:
        """(sample, token) at a document position."""
        i = bisect.bisect_right(self._starts, position) - 1
        return self._owners[i] if i >= 0 else None

    def selected_span(self) -> tuple[int, int, int] | None:
        """(sample, first token, last token + 1) of the selection within one sample, or None."""
        cursor = self.textCursor()
        if not cursor.hasSelection():
            return None
        a = self.token_at(cursor.selectionStart())
        b = self.token_at(max(cursor.selectionStart(), cursor.selectionEnd() - 1))
        if a is None or b is None or a[0] != b[0]:
            return None
        return a[0], a[1], b[1] + 1

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Report the hovered token."""
        super().mouseMoveEvent(event)
        pos = self.cursorForPosition(event.position().toPoint()).position()
        hit = self.token_at(max(0, pos - 1)) if self._starts else None
        self.highlight(*(hit or (-1, -1)))
        self.hovered.emit(*(hit or (-1, -1)))

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        """The pointer left: no token is hovered."""
        super().leaveEvent(event)
        self.highlight(-1, -1)


class TextPanel(QWidget):
    """The text view with a hover line and "Regenerate selection"."""

    regenerate_requested = Signal(int, int, int)  # sample, start, end

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = TokenText(self)
        self.hover = QLabel(" ")
        # one line whatever it says: long hover text is cut at the edge, never widens the window
        self.hover.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.regen = QPushButton("Regenerate selection")
        self.regen.setToolTip("Keep everything but the selected span of one sample and resample the span")
        self.regen.clicked.connect(self._regen)
        self.by_confidence = QCheckBox("Confidence")
        self.by_confidence.setToolTip(
            "Colour each revealed token by how confident the model was in it when it was revealed\n"
            "(red 0, amber 0.5, green 1), as LLaDA's demo does"
        )
        self.legend = QLabel()
        self.legend.setToolTip(
            "What the colours mean (with Confidence: the model's confidence, 0 to 1).\n"
            "Select a span of one sample, then Regenerate selection"
        )
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.by_confidence.toggled.connect(lambda _on: self.update_legend())
        self.update_legend()
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.legend, 1)
        bar.addWidget(self.by_confidence)
        bar.addWidget(self.regen)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.hover)

    def update_legend(self) -> None:
        """Show the legend in the colours of the current palette (light or dark)."""
        dark = self.palette().base().color().lightness() < 128
        self.legend.setText(text_legend_html(dark, self.by_confidence.isChecked()))

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        """The theme changed: the legend follows."""
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.update_legend()

    def _regen(self) -> None:
        span = self.view.selected_span()
        if span is not None:
            self.regenerate_requested.emit(*span)


__all__ = ["PARTIAL", "TextPanel", "TokenText"]
