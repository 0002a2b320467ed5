"""Trajectory states -> pictures and rich text (pure: no widgets, no engine thread).

A state is a digit tensor (N, L, ell) with the mask symbol ``base``. Every token is *masked*
(all digits m), *partial* (some m) or *visible* (none m). What a partial token still allows is
looked up in a table indexed by its digit pattern, so rendering any step is one gather: O(N L).

Image views (``MODES``):
- ``state``: visible pixels show their value; a partial pixel shows the mean of the values its
  decided digits still allow, tinted by how undecided it is; masked pixels are the tint colour.
- ``prediction``: the model's predicted clean sample at that step (where recorded).
- ``map``: one colour per state (masked / partial, brighter the more digits are decided / visible).
- ``confidence``: each decided or partial token coloured by how confident the model was in the
  digits it revealed (the least confident of them; red 0, amber 0.5, green 1), as LLaDA's demo
  colours tokens; undecided digits tinted as in ``state``. Needs the recorded confidence.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtGui import QImage

MODES = ("state", "prediction", "map", "confidence")
MODE_LABELS = {"state": "State", "prediction": "Prediction", "map": "State map", "confidence": "Confidence"}
# confidence ramp: (confidence, RGB) stops, linear in between
CONFIDENCE_STOPS = ((0.0, (215, 48, 39)), (0.5, (240, 170, 40)), (1.0, (40, 170, 90)))

TINT = np.array([92, 70, 180], dtype=np.float32)  # colour of "undecided"
MAP_MASKED = np.array([52, 56, 74], dtype=np.float32)
MAP_PARTIAL = np.array([240, 170, 40], dtype=np.float32)
MAP_VISIBLE = np.array([40, 180, 140], dtype=np.float32)
GAP_COLOUR = (112, 112, 124)  # mid grey: visible between dark and light images alike
MAX_PATTERNS = 1 << 20  # pattern tables larger than this fall back to digit arithmetic
MAX_LUT_WORK = 1 << 25  # C 2^ell: building the tables costs this many bincount entries
MAX_CANDIDATES_SHOWN = 3  # a partial text token lists its candidates inline up to this many

MASKED, PARTIAL, VISIBLE = 0, 1, 2
STATE_NAMES = ("masked", "partial", "visible")


@dataclass(frozen=True)
class TokenInfo:
    """What the studio shows when hovering one token."""

    index: int
    digits: tuple[int, ...]  # mask symbol = base
    base: int
    state: str
    count: int  # values still possible
    low: int
    high: int
    likely: tuple[tuple[int, float], ...]  # (value, probability), most likely first

    def digits_text(self) -> str:
        """Digits most significant first, 'm' for masked ones."""
        return " ".join("m" if d == self.base else str(d) for d in self.digits)


class Renderer:
    """Renders digit states of one model configuration.

    Takes anything with num_classes, ell, base,
    modality, height, width, channels and permutation, i.e. an ``engine.ModelConfig``).
    """

    def __init__(self, config) -> None:
        self.config = config
        self.num_classes = int(config.num_classes)
        self.ell = int(config.ell)
        self.base = int(config.base)
        self.mask = self.base
        perm = getattr(config, "permutation", None)
        # digits of every token id, most significant first: (C, ell)
        codes = torch.arange(self.num_classes)
        if perm is not None:
            codes = torch.tensor(perm, dtype=torch.long)[codes]
        place = torch.tensor([self.base ** (self.ell - 1 - j) for j in range(self.ell)])
        self.place = place
        self.token_digits = (codes.unsqueeze(-1) // place) % self.base  # (C, ell)
        self.permuted = perm is not None
        # pattern index of a partial token: digits read in base (b + 1)
        self.pattern_place = torch.tensor([(self.base + 1) ** (self.ell - 1 - j) for j in range(self.ell)])
        self._pattern_place_np = self.pattern_place.numpy()
        num_patterns = (self.base + 1) ** self.ell
        small = num_patterns <= MAX_PATTERNS and self.num_classes << self.ell <= MAX_LUT_WORK
        self._lut = self._build_lut() if small else None
        # a BPE text model's vocabulary (None: byte tokens, images, or a vocabulary not at hand)
        self.tokenizer = getattr(config, "vocabulary", None)
        self.bpe = getattr(config, "tokenizer", "") == "bpe"

    # ------------------------------------------------------------------ tables
    def _build_lut(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean allowed value (K,) and number of allowed values (K,) for every digit pattern.

        Each token is allowed by exactly the 2^ell patterns that mask some of its digits, so the
        tables are 2^ell bincounts over the C tokens: O(C 2^ell), not O(C (b+1)^ell).
        """
        num_patterns = (self.base + 1) ** self.ell
        digits = self.token_digits.numpy().astype(np.int64)  # (C, ell)
        values = np.arange(self.num_classes, dtype=np.float64)
        count = np.zeros(num_patterns, dtype=np.int64)
        total = np.zeros(num_patterns, dtype=np.float64)
        for subset in range(1 << self.ell):  # which digits are masked
            pattern = digits.copy()
            for j in range(self.ell):
                if subset >> j & 1:
                    pattern[:, j] = self.mask
            idx = pattern @ self._pattern_place_np  # (C,)
            count += np.bincount(idx, minlength=num_patterns)
            total += np.bincount(idx, weights=values, minlength=num_patterns)
        mean = np.where(count > 0, total / np.maximum(count, 1), -1.0)
        return mean.astype(np.float32), count

    def token_stats(self, state: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per token: mean allowed value, number of allowed values, masked-digit fraction.

        state (..., ell) -> three arrays of shape (...). An impossible pattern has count 0.
        """
        # numpy, not torch: single-threaded and predictable on the GUI thread
        y = state.numpy() if isinstance(state, torch.Tensor) else np.asarray(state)
        y = y.astype(np.int64, copy=False)
        masked = y == self.mask  # (..., ell)
        frac = masked.mean(-1, dtype=np.float32)
        if self._lut is not None:
            idx = y @ self._pattern_place_np  # (...)
            mean_lut, count_lut = self._lut
            return mean_lut[idx], count_lut[idx], frac
        # fallback (huge pattern tables): contiguous-range arithmetic, ignores any permutation
        place = self.place.numpy()
        low = np.minimum(np.where(masked, 0, y) @ place, self.num_classes - 1)
        high = np.minimum(np.where(masked, self.base - 1, y) @ place, self.num_classes - 1)
        return ((low + high) / 2).astype(np.float32), high - low + 1, frac

    # ------------------------------------------------------------------ images
    def _to_pixels(self, x: np.ndarray) -> np.ndarray:
        """Token-shaped (N, L) -> (N, H, W, channels): tokens are row-major (H, W, channels)."""
        cfg = self.config
        return x.reshape(x.shape[0], cfg.height, cfg.width, cfg.channels)

    def _levels(self, values: np.ndarray) -> np.ndarray:
        return values * (255.0 / (self.num_classes - 1))

    def image_arrays(
        self,
        state: torch.Tensor,
        mode: str = "state",
        prediction: torch.Tensor | None = None,
        confidence: torch.Tensor | None = None,
    ) -> np.ndarray:
        """uint8 RGB (N, H, W, 3) for a state (N, L, ell) in one of ``MODES``.

        confidence (N, L, ell), NaN for digits not revealed: for the ``confidence`` mode (without
        it, that mode draws the ``state`` view).
        """
        if mode not in MODES:
            raise ValueError(f"view mode must be one of {MODES}, got {mode!r}")
        if self.config.modality != "image":
            raise ValueError("image views need an image model")
        state = state.reshape(-1, state.shape[-2], self.ell)
        mean, count, frac = self.token_stats(state)
        if mode == "prediction" and prediction is not None:
            pred = prediction.reshape(state.shape[0], -1).numpy()
            val = np.where(pred >= 0, self._levels(pred.astype(np.float32)), 127.5)
            rgb = self._rgb(self._to_pixels(val))
            return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        frac_px = self._to_pixels(frac).mean(-1, keepdims=True)  # (N, H, W, 1)
        if mode == "map":
            all_masked = self._to_pixels(frac).min(-1, keepdims=True) >= 1.0
            any_masked = frac_px > 0
            decided = 1.0 - frac_px
            partial = MAP_PARTIAL * (0.45 + 0.55 * decided)
            rgb = np.where(all_masked, MAP_MASKED, np.where(any_masked, partial, MAP_VISIBLE))
            return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        if mode == "confidence" and confidence is not None:
            cfg = self.config
            colours = confidence_colours(confidence.reshape(state.shape))  # (N, L, 3)
            # the colour channels of a pixel are separate tokens: show their mean colour
            val = colours.reshape(state.shape[0], cfg.height, cfg.width, cfg.channels, 3).mean(-2)
        else:
            val = self._rgb(self._to_pixels(self._levels(np.maximum(mean, 0))))  # (N, H, W, 3)
        # strength of the "undecided" tint: 0 visible, 1 masked, 0.3..0.8 partial
        strength = np.where(frac_px <= 0, 0.0, np.where(frac_px >= 1, 1.0, 0.3 + 0.5 * frac_px))
        rgb = val * (1.0 - strength) + TINT * strength
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)

    @staticmethod
    def _rgb(px: np.ndarray) -> np.ndarray:
        return np.repeat(px, 3, axis=-1) if px.shape[-1] == 1 else px

    def partial_grid(self, state: torch.Tensor, columns: int | None = None) -> np.ndarray:
        """Bool array with the shape of :meth:`render`'s image: True on partially decided pixels."""
        state = state.reshape(-1, state.shape[-2], self.ell)
        _, _, frac = self.token_stats(state)
        frac_px = self._to_pixels(frac).mean(-1)  # (N, H, W)
        partial = ((frac_px > 0) & (frac_px < 1)).astype(np.uint8) * 255
        return grid(np.repeat(partial[..., None], 3, axis=-1), columns)[..., 0] == 255

    def render(
        self,
        state: torch.Tensor,
        mode: str = "state",
        prediction: torch.Tensor | None = None,
        columns: int | None = None,
        confidence: torch.Tensor | None = None,
    ) -> QImage:
        """A grid of all samples of a state (N, L, ell) as one QImage (1 pixel per pixel)."""
        return to_qimage(grid(self.image_arrays(state, mode, prediction, confidence), columns))

    # ------------------------------------------------------------------ hover
    def token_info(
        self, digits: torch.Tensor, index: int, probs: torch.Tensor | None = None, top: int = 5
    ) -> TokenInfo:
        """Hover details for one token: digits (ell,), optional filtered probabilities (C,)."""
        digits = digits.long().reshape(self.ell)
        masked = digits == self.mask
        ok = torch.ones(self.num_classes, dtype=torch.bool)
        for j in range(self.ell):
            if not masked[j]:
                ok &= self.token_digits[:, j] == digits[j]
        allowed = torch.nonzero(ok).flatten()
        n_masked = int(masked.sum())
        state = VISIBLE if n_masked == 0 else MASKED if n_masked == self.ell else PARTIAL
        likely: tuple[tuple[int, float], ...] = ()
        if probs is not None and allowed.numel():
            p = probs.double().flatten()[allowed]
            p = p / p.sum().clamp(min=1e-30)
            order = torch.argsort(p, descending=True)[:top]
            likely = tuple((int(allowed[i]), float(p[i])) for i in order)
        elif allowed.numel() and allowed.numel() <= top:
            likely = tuple((int(v), 1.0 / allowed.numel()) for v in allowed)
        low = int(allowed.min()) if allowed.numel() else -1
        high = int(allowed.max()) if allowed.numel() else -1
        return TokenInfo(
            index,
            tuple(int(d) for d in digits),
            self.base,
            STATE_NAMES[state],
            int(allowed.numel()),
            low,
            high,
            likely,
        )

    # ------------------------------------------------------------------ text
    def text_segments(self, state: torch.Tensor) -> list[tuple[str, int, str]]:
        """(display text, token state, tooltip) per token of one text sample state (L, ell)."""
        state = state.reshape(-1, self.ell).long()
        mean, count, frac = self.token_stats(state)
        if self.bpe:
            return self._vocabulary_segments(state, mean, count, frac)
        out: list[tuple[str, int, str]] = []
        for i in range(state.shape[0]):
            f = float(frac[i])
            if f >= 1.0:
                out.append(("\u2591", MASKED, "masked"))
            elif f <= 0.0:
                value = int(round(float(mean[i])))
                out.append((byte_glyph(value), VISIBLE, f"byte {value}"))
            else:
                info = self.token_info(state[i], i)
                if info.count <= 3:
                    cands = [byte_glyph(v) for v, _ in info.likely]
                    out.append(("{" + "|".join(cands) + "}", PARTIAL, f"{info.count} candidates"))
                else:
                    out.append(("\u2592", PARTIAL, f"{info.count} values possible ({info.low}..{info.high})"))
        return out

    def _vocabulary_segments(
        self, state: torch.Tensor, mean: np.ndarray, count: np.ndarray, frac: np.ndarray
    ) -> list[tuple[str, int, str]]:
        """:meth:`text_segments` of a BPE model: a visible token shows the text of its entry.

        Runs of visible tokens are decoded together, so a character split across tokens still
        shows (on the token where it starts). A partial token lists its candidate entries when
        there are at most :data:`MAX_CANDIDATES_SHOWN`, else shows U+2592.
        """
        length = state.shape[0]
        out: list[tuple[str, int, str] | None] = [None] * length
        run: list[int] = []  # positions of the current run of visible tokens

        def flush() -> None:
            ids = [int(round(float(mean[k]))) for k in run]
            for k, tid, text in zip(run, ids, self.token_texts(ids), strict=True):
                out[k] = (text, VISIBLE, f"token {tid}")
            run.clear()

        for i in range(length):
            f = float(frac[i])
            if f <= 0.0 and count[i] == 1:
                run.append(i)
                continue
            flush()
            if f >= 1.0:
                out[i] = ("\u2591", MASKED, f"masked: any of {self.num_classes:,} entries")
            else:
                known = self.ell - int(round(f * self.ell))
                n = int(count[i])
                tip = f"{known_digits(known, self.ell)}: {n:,} candidates"
                if 0 < n <= MAX_CANDIDATES_SHOWN:
                    ids = self.allowed_tokens(state[i]).tolist()
                    shown = "{" + "|".join(self.token_texts([t])[0] for t in ids) + "}"
                    out[i] = (shown, PARTIAL, tip)
                else:
                    out[i] = ("\u2592", PARTIAL, tip)
        flush()
        return [o for o in out if o is not None]

    def token_texts(self, ids: list[int]) -> list[str]:
        """Display text of consecutive tokens, decoded together; never empty (one glyph at least).

        Newlines are kept, other unprintable characters and bytes that are not UTF-8 show as a
        middle dot, as does a token that holds only the tail of a character started before it.
        Without the vocabulary (a BPE output whose model is gone) tokens show as their ids.
        """
        if self.tokenizer is None:
            return [f"\u27e8{i}\u27e9" if self.bpe else byte_glyph(i) for i in ids]
        chunks = [self.tokenizer.token_bytes(i) if 0 <= i < self.num_classes else b"" for i in ids]
        texts = [""] * len(chunks)
        owner = [k for k, c in enumerate(chunks) for _ in c]  # token of each byte
        data = b"".join(chunks)
        p = 0
        while p < len(data):
            n = utf8_length(data[p])
            try:
                ch = data[p : p + n].decode("utf-8") if n else "\u00b7"
            except UnicodeDecodeError:
                ch, n = "\u00b7", 1
            texts[owner[p]] += ch if ch == "\n" or ch.isprintable() else "\u00b7"
            p += max(n, 1)
        return [t or "\u00b7" for t in texts]

    def token_label(self, token: int) -> str:
        """A vocabulary entry quoted, as a word in hover text: '" LORD"' or '#1234' (no vocabulary)."""
        if self.tokenizer is None:
            return f"#{token}" if self.bpe else str(token)
        return quote_bytes(self.tokenizer.token_bytes(token))

    def allowed_tokens(self, digits: torch.Tensor) -> torch.Tensor:
        """Token ids (ascending) whose digits agree with the visible digits of ``digits`` (ell,)."""
        digits = digits.long().reshape(self.ell)
        ok = torch.ones(self.num_classes, dtype=torch.bool)
        for j in range(self.ell):
            if int(digits[j]) != self.mask:
                ok &= self.token_digits[:, j] == digits[j]
        return torch.nonzero(ok).flatten()

    def ranked_candidates(
        self,
        digits: torch.Tensor,
        probs: torch.Tensor | None = None,
        predicted: int = -1,
        top: int = 5,
    ) -> tuple[int, list[tuple[int, float | None]]]:
        """(number allowed, the ``top`` most likely allowed tokens with their probability).

        Ranked by ``probs`` (C,) when given (renormalised over the allowed tokens), else the
        recorded ``predicted`` token first (if allowed) and the rest by id, probability None.
        """
        allowed = self.allowed_tokens(digits)
        n = int(allowed.numel())
        if not n:
            return 0, []
        if probs is not None:
            p = probs.double().flatten()[allowed]
            p = p / p.sum().clamp(min=1e-30)
            order = torch.argsort(p, descending=True, stable=True)[:top]
            return n, [(int(allowed[k]), float(p[k])) for k in order]
        ids = allowed[: top + 1].tolist()
        if 0 <= predicted < self.num_classes and bool((allowed == predicted).any()):
            ids = [predicted] + [i for i in ids if i != predicted]
        return n, [(i, None) for i in ids[:top]]

    def describe_text_token(
        self,
        digits: torch.Tensor,
        probs: torch.Tensor | None = None,
        predicted: int = -1,
        top: int = 5,
    ) -> str:
        """Hover text of one BPE text token: what it is, or what its visible digits still allow.

        e.g. ``3 digits of 4 known: 7 candidates: " LORD" 41%, " Lord" 30%, ...``; a visible
        token: ``token 1234 " LORD" (5 bytes)``.
        """
        digits = digits.long().reshape(self.ell)
        known = int((digits != self.mask).sum())
        n, ranked = self.ranked_candidates(digits, probs, predicted, top)
        if known == self.ell and n == 1:
            t = ranked[0][0]
            size = len(self.tokenizer.token_bytes(t)) if self.tokenizer is not None else 0
            return f"token {t} {self.token_label(t)}" + (f" ({size} bytes)" if size else "")
        if n == 0:
            return f"{known_digits(known, self.ell)}: no vocabulary entry has these digits"
        head = (
            f"masked: any of {n:,} entries"
            if known == 0
            else f"{known_digits(known, self.ell)}: {n:,} candidate{'s' if n != 1 else ''}"
        )
        if known == 0 and probs is None and not 0 <= predicted < self.num_classes:
            return head  # nothing ranks them: listing ids 0, 1, 2 would say nothing
        words = [self.token_label(t) + (f" {p:.0%}" if p is not None else "") for t, p in ranked]
        tail = ", ..." if n > len(ranked) else ""
        label = "likely" if known == 0 else ""
        return f"{head}: {label + ' ' if label else ''}{', '.join(words)}{tail}"

    def text_html(self, state: torch.Tensor, dark: bool = False) -> str:
        """Rich text (HTML) of one text sample state (L, ell), tokens coloured by state."""
        colours = TEXT_COLOURS_DARK if dark else TEXT_COLOURS_LIGHT
        parts = []
        for text, kind, _tip in self.text_segments(state):
            fg, bg = colours[kind]
            style = f"color:{fg};" + (f"background-color:{bg};" if bg else "")
            parts.append(f'<span style="{style}">{html.escape(text).replace(chr(10), "<br>")}</span>')
        return '<div style="font-family:monospace; white-space:pre-wrap;">' + "".join(parts) + "</div>"


TEXT_COLOURS_LIGHT = {MASKED: ("#9a9aae", ""), PARTIAL: ("#7a4a00", "#ffe2a8"), VISIBLE: ("#111111", "")}
TEXT_COLOURS_DARK = {MASKED: ("#5c5c70", ""), PARTIAL: ("#ffd27a", "#4a3710"), VISIBLE: ("#eeeeee", "")}


def confidence_colours(confidence: torch.Tensor) -> np.ndarray:
    """RGB float (..., 3) per token from digit confidences (..., ell), NaN = not revealed.

    A token takes the least confident of its revealed digits; a token with none revealed is
    mid grey (the undecided tint covers it).
    """
    conf = confidence.float().numpy()
    revealed = ~np.isnan(conf)
    low = np.where(revealed, conf, np.inf).min(-1)  # (...)
    low = np.where(np.isfinite(low), np.clip(low, 0.0, 1.0), np.nan)
    xs = np.array([c for c, _ in CONFIDENCE_STOPS], dtype=np.float32)
    out = np.empty((*low.shape, 3), dtype=np.float32)
    for channel in range(3):
        ys = np.array([rgb[channel] for _, rgb in CONFIDENCE_STOPS], dtype=np.float32)
        out[..., channel] = np.interp(np.nan_to_num(low, nan=0.5), xs, ys)
    out[np.isnan(low)] = 127.5
    return out


def confidence_backgrounds(confidence: torch.Tensor) -> list[str | None]:
    """Light background colours (hex) per token of one text sample, from confidence (L, ell).

    None for tokens with no revealed digit (they keep the state's colours).
    """
    rgb = confidence_colours(confidence)  # (L, 3)
    unrevealed = torch.isnan(confidence.float()).all(-1).numpy()
    light = 0.55 * rgb + 0.45 * 255.0  # pale enough for dark text on top
    return [
        None if unrevealed[i] else "#{:02x}{:02x}{:02x}".format(*(int(round(c)) for c in light[i]))
        for i in range(rgb.shape[0])
    ]


def num(value: float) -> str:
    """A count or a mean of counts for display: integers as such, else one decimal (62.7)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def byte_glyph(value: int) -> str:
    """How one byte token is drawn: printable ASCII as itself, newline kept, others as a dot."""
    if value == 10:
        return "\n"
    if 32 <= value < 127:
        return chr(value)
    return "\u00b7"


ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", '"': '\\"'}


def quote_bytes(raw: bytes) -> str:
    r"""Bytes as a quoted word: UTF-8 text as itself, escapes for the rest ("\xe2\x80", "\n")."""
    out = []
    for c in raw.decode("utf-8", errors="surrogateescape"):
        o = ord(c)
        if 0xDC80 <= o <= 0xDCFF:  # a byte that is not (complete) UTF-8
            out.append(f"\\x{o - 0xDC00:02x}")
        elif c in ESCAPES:
            out.append(ESCAPES[c])
        elif not c.isprintable():
            out.append(f"\\x{o:02x}" if o < 256 else f"\\u{o:04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def known_digits(known: int, ell: int) -> str:
    """'3 digits of 4 known' (how much of a token is decided)."""
    return f"{known} digit{'' if known == 1 else 's'} of {ell} known"


def utf8_length(lead: int) -> int:
    """Bytes of the UTF-8 character that starts with byte ``lead`` (0: not a lead byte)."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead < 0xE0:
        return 2
    if 0xE0 <= lead < 0xF0:
        return 3
    if 0xF0 <= lead < 0xF5:
        return 4
    return 0


def grid(images: np.ndarray, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """Tile (N, H, W, 3) uint8 images into one (rows*(H+gap)-gap, cols*(W+gap)-gap, 3) array."""
    n, h, w, _ = images.shape
    cols = columns or max(1, math.ceil(math.sqrt(n)))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    out = np.empty((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), dtype=np.uint8)
    out[:] = GAP_COLOUR
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = images[i]
    return out


def grid_position(n: int, h: int, w: int, x: int, y: int, columns: int | None = None, gap: int = 1):
    """Inverse of :func:`grid`: image pixel (x, y) -> (sample, row, col) or None on a gap."""
    cols = min(columns or max(1, math.ceil(math.sqrt(n))), n)
    c, px = divmod(x, w + gap)
    r, py = divmod(y, h + gap)
    sample = r * cols + c
    if x < 0 or y < 0 or c >= cols or px >= w or py >= h or sample >= n:
        return None
    return sample, py, px


def to_qimage(rgb: np.ndarray) -> QImage:
    """uint8 (H, W, 3) -> a QImage that owns its pixels."""
    rgb = np.ascontiguousarray(rgb)
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def qimage_to_array(image: QImage) -> np.ndarray:
    """QImage -> uint8 (H, W, 3) (for tests and exports)."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w = image.height(), image.width()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    return buf.reshape(h, image.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy()
