"""DataOptions: how a data path is found, decoded, preprocessed and split (frozen, validated)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from engine.data.images import DEFAULT_BACKGROUND, DEFAULT_MAX_PIXELS, FITS, parse_background
from engine.data.text import TEXT_MODES


@dataclass(frozen=True)
class DataOptions:
    """How a data path is turned into tokens and split (the model config decides size/levels).

    fit: "crop" (resize to cover, centre-crop) or "pad" (resize to fit, borders in the background).
    background: what transparency is composited onto: "white" (default), "black" or "#rrggbb".
    text_mode: "pad" (sequences never span documents) or "pack" (see :mod:`engine.data.text`).
    val_fraction: share of sources held out for validation; seed: the split's seed.
    max_pixels: decompression-bomb guard, images above it are skipped unread.
    max_items: 0 = all; otherwise keep only the first this many items (in sorted file order).
    include / exclude: glob patterns (on the relative path or the file name); with ``include``
    only matching files are used, ``exclude`` leaves matching files out.
    column: for text, the column (CSV/TSV) or key (JSONL) whose values are the documents.
    drop_flat: leave out items that are one flat colour (or blank text) after preprocessing.
    """

    fit: str = "crop"
    text_mode: str = "pad"
    val_fraction: float = 0.1
    seed: int = 0
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_items: int = 0
    background: str = DEFAULT_BACKGROUND
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    column: str = ""
    drop_flat: bool = False

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, got {self.fit!r}")
        if self.text_mode not in TEXT_MODES:
            raise ValueError(f"text_mode must be one of {TEXT_MODES}, got {self.text_mode!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.max_pixels < 1 or self.max_items < 0:
            raise ValueError("max_pixels must be >= 1 and max_items >= 0")
        parse_background(self.background)
        for name in ("include", "exclude"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(p, str) and p for p in value):
                raise ValueError(f"{name} must be a list of non-empty glob patterns, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if not isinstance(self.column, str):
            raise ValueError(f"column must be a column name (text), got {self.column!r}")
        if not isinstance(self.drop_flat, bool):
            raise ValueError(f"drop_flat must be true or false, got {self.drop_flat!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = dataclasses.asdict(self)
        out["include"], out["exclude"] = list(self.include), list(self.exclude)
        return out
