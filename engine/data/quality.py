"""Items that would teach a model nothing: one flat colour (images) or blank (text).

Checked on the tokens *after* preprocessing, so it sees what the model would see (transparency
composited onto black turns dark glyphs into black squares; that is the case this catches).

An image item is *flat* when at least ``FLAT_SHARE`` (98%) of its pixels lie within
``FLAT_TOLERANCE`` (8/255 of the level range, at least 0 levels) of its per-channel median: one
colour, or one colour with a few stray pixels. A text item is flat when it holds only
whitespace bytes (space, tab, newline, carriage return, form feed) or one repeated byte.
"""

from __future__ import annotations

import numpy as np

FLAT_SHARE = 0.98
FLAT_TOLERANCE = 8 / 255
FLAT_WARN_SHARE = 0.05  # the report warns when more than 5% of the items are flat
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(b" \t\n\r\f\v")] = True


def whitespace_table(vocabulary: object | None, num_classes: int) -> np.ndarray:
    """(C,) bool: tokens that are whitespace only (bytes, or entries of a BPE ``vocabulary``)."""
    if vocabulary is None:
        table = np.zeros(max(256, num_classes), dtype=bool)
        table[:256] = _WHITESPACE
        return table
    space = set(b" \t\n\r\f\v")
    return np.array(
        [all(c in space for c in vocabulary.token_bytes(i)) for i in range(num_classes)],  # type: ignore[attr-defined]
        dtype=bool,
    )


def flat_mask(
    tokens: np.ndarray,
    modality: str,
    channels: int,
    num_classes: int,
    chunk: int = 1024,
    vocabulary: object | None = None,
) -> np.ndarray:
    """(N,) bool: which items of ``tokens`` (N, L) are flat (see the module docstring).

    Text tokens are bytes, or ids of ``vocabulary`` (a BPE vocabulary) when given.
    """
    n = int(tokens.shape[0])
    white = whitespace_table(vocabulary, num_classes) if modality == "text" else _WHITESPACE
    out = np.zeros(n, dtype=bool)
    for start in range(0, n, chunk):
        part = np.asarray(tokens[start : start + chunk])
        if modality == "text":
            same = (part == part[:, :1]).all(axis=1)
            blank = white[part.astype(np.int64)].all(axis=1)
            out[start : start + len(part)] = same | blank
            continue
        px = part.reshape(len(part), -1, channels).astype(np.int32)  # (n, H*W, ch)
        med = np.median(px, axis=1, keepdims=True)  # (n, 1, ch)
        tol = FLAT_TOLERANCE * (num_classes - 1)
        near = (np.abs(px - med) <= tol).all(axis=2)  # (n, H*W)
        out[start : start + len(part)] = near.mean(axis=1) >= FLAT_SHARE
    return out
