"""The text view.

Samples with tokens coloured by state (masked / partial with candidates /
visible), or by the model's confidence in each revealed token; hover shows a token's digits;
select a span to regenerate it.
"""

from __future__ import annotations

import bisect

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QTextEdit, QVBoxLayout, QWidget

from studio.render import PARTIAL, TEXT_COLOURS_DARK, TEXT_COLOURS_LIGHT, VISIBLE


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
        starts, owners = [], []
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
        self._starts, self._owners = starts, owners

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
        self.hovered.emit(*(hit or (-1, -1)))


class TextPanel(QWidget):
    """The text view with a hover line and "Regenerate selection"."""

    regenerate_requested = Signal(int, int, int)  # sample, start, end

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = TokenText(self)
        self.hover = QLabel(" ")
        self.regen = QPushButton("Regenerate selection")
        self.regen.setToolTip("Keep everything but the selected span of one sample and resample the span")
        self.regen.clicked.connect(self._regen)
        self.by_confidence = QCheckBox("Confidence")
        self.by_confidence.setToolTip(
            "Colour each revealed token by how confident the model was in it when it was revealed\n"
            "(red 0, amber 0.5, green 1), as LLaDA's demo does"
        )
        self.legend = QLabel(
            "<span style='background:#ffe2a8;color:#7a4a00'>&nbsp;partial&nbsp;</span> "
            "<span style='color:#9a9aae'>\u2591 masked</span>"
        )
        self.legend.setToolTip("Select a span of one sample, then Regenerate selection")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
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

    def _regen(self) -> None:
        span = self.view.selected_span()
        if span is not None:
            self.regenerate_requested.emit(*span)


__all__ = ["PARTIAL", "TextPanel", "TokenText"]
