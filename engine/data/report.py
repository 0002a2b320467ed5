"""The pre-flight report: what a data path holds for a model, written for people.

The same content goes to ``prime train --dry-run`` (:meth:`PreflightReport.summary`), to
``--json`` (:meth:`PreflightReport.to_dict`) and to the studio's Train tab: warnings first, then
counts, a small table of statistics (sentences, never Python reprs), the skipped files with their
reasons and at least 16 preview items exactly as the model will see them. Every piece of text that
comes from a file (names, previews) has its terminal control characters replaced before it is
printed (:func:`printable`), so a hostile file name or file cannot drive the terminal.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.data.dataset import TokenData
from engine.data.files import DataError, Skipped

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
PAD_MARK = "\u23ce"  # the newline padding at the end of a text item


def printable(text: str) -> str:
    r"""``text`` with control characters (escape sequences, bidi overrides) shown as ``\xNN``/``\uNNNN``.

    Newlines and tabs are kept; callers that need one line escape them themselves.
    """

    def esc(m: re.Match[str]) -> str:
        c = ord(m.group())
        return f"\\x{c:02x}" if c < 256 else f"\\u{c:04x}"

    return _CONTROL.sub(esc, text)


_TOKEN_PAD_TAIL = re.compile(r"(?:\|\n)+$")  # "|\n|\n": newline tokens after the last token of a BPE preview


def split_padding(text: str, tokens: bool = False) -> tuple[str, int]:
    r"""(the text of an item without its newline padding tail, how many newline tokens that tail is).

    ``tokens``: ``text`` is a BPE preview with ``|`` after each token; its padding is ``|\n``
    repeated. Otherwise (bytes) every trailing newline is one token.
    """
    if tokens:
        tail = _TOKEN_PAD_TAIL.search(text)
        body = text[: tail.start()] if tail else text
        return body, (len(text) - len(body)) // 2
    body = text.rstrip("\n")
    return body, len(text) - len(body)


def snippet(text: str, limit: int = 160, tokens: bool = False) -> str:
    r"""One line of a text item: newlines as ``\n``, the newline padding tail as one marker.

    ``tokens``: ``text`` is a BPE preview with ``|`` between tokens (:func:`split_padding`).
    """
    body, pad = split_padding(text, tokens)
    shown = printable(body[:limit]).replace("\n", "\\n").replace("\t", "\\t")
    if len(body) > limit:
        shown += f"\u2026 (+{len(body) - limit} characters)"
    if pad:
        shown += f" {PAD_MARK}x{pad}"
    return shown


@dataclass(frozen=True, eq=False)
class PreflightReport:
    """What a data path holds for a model, before any training.

    ``preview_tokens`` (k, L) int64 are items *after* preprocessing (render them with
    :mod:`engine.files.convert`); ``preview_text`` holds their decoded text for text data.
    ``stats`` maps a label to a readable value (a sentence fragment or a number); ``warnings``
    are what could spoil a run (shown first); ``flat_items``/``flat_sources`` count and name the
    items that are one flat colour or blank after preprocessing (see :mod:`engine.data.quality`).
    ``problem`` is None when training can start, else the reason it cannot.
    """

    path: str
    modality: str
    files_found: int
    files_used: int
    skipped: tuple[Skipped, ...]
    hidden_ignored: int
    items: int
    train_items: int
    val_items: int
    stats: dict[str, Any]
    preview_tokens: torch.Tensor
    preview_text: tuple[str, ...]
    preview_sources: tuple[str, ...]
    fingerprint: str
    options: dict[str, Any]
    model: dict[str, Any]
    problem: str | None = None
    data: TokenData | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()
    flat_items: int = 0
    flat_sources: tuple[str, ...] = ()
    flat_dropped: int = 0
    excluded: int = 0

    @property
    def ok(self) -> bool:
        """True when there is something to train on."""
        return self.problem is None

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        """Number of skipped files per reason."""
        return dict(Counter(s.reason for s in self.skipped))

    def require_usable(self) -> TokenData:
        """The data, or :class:`DataError` with ``problem``."""
        if self.problem is not None or self.data is None:
            raise DataError(self.problem or "no usable data")
        return self.data

    # ------------------------------------------------------------------ sentences
    def target_line(self) -> str:
        """What the model expects, in words."""
        geo, opt = self.model, self.options
        if self.modality == "image":
            kind = "grey" if geo["channels"] == 1 else "RGB"
            return (
                f"{geo['height']}x{geo['width']} {kind} images, {geo['num_classes']} levels per channel; "
                f"resized with {opt['fit']}, transparency composited onto {opt['background']}"
            )
        packing = (
            "one document per sequence" if opt["text_mode"] == "pad" else "documents packed back to back"
        )
        column = f", column {opt['column']!r} of CSV/JSONL files" if opt.get("column") else ""
        if self.tokenizer == "bpe":
            return (
                f"sequences of {geo['seq_len']} BPE tokens from a {geo['num_classes']:,}-entry byte-level "
                f"vocabulary ({packing}{column})"
            )
        return f"sequences of {geo['seq_len']} byte tokens ({packing}{column})"

    @property
    def tokenizer(self) -> str:
        """``"bytes"`` or ``"bpe"`` for text (a byte model has C = 256, a BPE one more), else ``""``."""
        if self.modality != "text":
            return ""
        given = self.model.get("tokenizer")
        if given in ("bytes", "bpe"):
            return given
        return "bytes" if self.model.get("num_classes") == 256 else "bpe"

    def counts_line(self) -> str:
        """Files found, used, skipped and the items they make."""
        parts = [f"{self.files_found} files found", f"{self.files_used} used", f"{len(self.skipped)} skipped"]
        if self.hidden_ignored:
            parts.append(f"{self.hidden_ignored} hidden ignored")
        if self.excluded:
            parts.append(f"{self.excluded} left out by the include/exclude patterns")
        return (
            ", ".join(parts)
            + f"; {self.items} items ({self.train_items} for training, {self.val_items} for validation)"
        )

    def skipped_lines(self) -> list[str]:
        """One line per reason: how many files, e.g. "3 binary, 1 unreadable"."""
        return [f"{n} {r}" for r, n in sorted(self.skipped_by_reason.items())]

    def stats_rows(self) -> list[tuple[str, str]]:
        """(label, value) rows of the statistics table."""
        return [(k, v if isinstance(v, str) else f"{v:,}") for k, v in self.stats.items()]

    def preview_title(self) -> str:
        """The preview's heading."""
        n = len(self.preview_sources)
        if self.modality == "text" and self.tokenizer == "bpe":
            return (
                f"{n} preview items exactly as the model will see them (| separates the BPE tokens; "
                f"{PAD_MARK}xN is N newline tokens padding the end of an item)"
            )
        if self.modality == "text":
            return (
                f"{n} preview items exactly as the model will see them (every byte is one token; "
                f"{PAD_MARK}xN is the newline padding at the end of an item)"
            )
        return f"{n} preview items exactly as the model will see them"

    # ------------------------------------------------------------------ outputs
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (preview tokens as lists); the same content as :meth:`summary`."""
        return {
            "path": self.path,
            "modality": self.modality,
            "ok": self.ok,
            "problem": self.problem,
            "warnings": list(self.warnings),
            "target": self.target_line(),
            "files_found": self.files_found,
            "files_used": self.files_used,
            "files_skipped": len(self.skipped),
            "hidden_ignored": self.hidden_ignored,
            "excluded": self.excluded,
            "skipped_by_reason": self.skipped_by_reason,
            "skipped": [s.to_dict() for s in self.skipped],
            "items": self.items,
            "train_items": self.train_items,
            "val_items": self.val_items,
            "flat_items": self.flat_items,
            "flat_dropped": self.flat_dropped,
            "flat_sources": list(self.flat_sources),
            "stats": dict(self.stats),
            "stats_table": [list(r) for r in self.stats_rows()],
            "preview_title": self.preview_title(),
            "preview_tokens": self.preview_tokens.tolist(),
            "preview_text": list(self.preview_text),
            "preview_sources": list(self.preview_sources),
            "fingerprint": self.fingerprint,
            "options": self.options,
            "model": self.model,
        }

    def summary(self, max_skipped: int = 10, max_flat: int = 10) -> str:
        """Human-readable multi-line text (``prime train --dry-run``), control characters escaped."""
        lines = [f"data: {self.path} ({self.modality})"]
        if self.problem is not None:
            lines.append(f"cannot train: {self.problem}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        lines.append(f"target: {self.target_line()}")
        lines.append(f"files: {self.counts_line()}")
        if self.flat_sources and not self.flat_dropped:
            lines.append(f"flat items ({self.flat_items}):")
            for src in self.flat_sources[:max_flat]:
                lines.append(f"  {src}")
            if self.flat_items > max_flat:
                lines.append(f"  ... and {self.flat_items - max_flat} more (all of them in --json)")
        if self.skipped:
            lines.append(f"skipped: {', '.join(self.skipped_lines())}")
            for s in self.skipped[:max_skipped]:
                lines.append(f"  {s.path}: {s.reason} ({s.detail})")
            if len(self.skipped) > max_skipped:
                lines.append(f"  ... and {len(self.skipped) - max_skipped} more (all of them in --json)")
        rows = self.stats_rows()
        if rows:
            width = max(len(k) for k, _ in rows)
            lines.append("statistics:")
            lines.extend(f"  {k.ljust(width)}  {v}" for k, v in rows)
        if self.preview_text:
            lines.append(self.preview_title() + ":")
            for i, (src, text) in enumerate(zip(self.preview_sources, self.preview_text, strict=True)):
                lines.append(f"  {i + 1:>2}. [{src}] {snippet(text, tokens=self.tokenizer == 'bpe')}")
        elif self.preview_sources:
            lines.append(self.preview_title() + " (save them as a grid with --preview PNG):")
            lines.extend(f"  {i + 1:>2}. {src}" for i, src in enumerate(self.preview_sources))
        lines.append(f"fingerprint: {self.fingerprint or '-'}")
        lines.append("ready to train" if self.ok else f"cannot train: {self.problem}")
        return "\n".join(printable(line) for line in lines)
