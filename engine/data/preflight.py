"""Loading a data path for a model config, and the pre-flight report shown before training.

:func:`preflight` never raises for bad data: it returns a :class:`PreflightReport` whose
``problem`` says why nothing can be trained on. :func:`load_data` returns the :class:`TokenData`
and raises :class:`~engine.data.files.DataError` with that message instead.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.config import ModelConfig
from engine.data.dataset import TokenData, make_token_data
from engine.data.files import NOT_AN_IMAGE, NOT_TEXT, DataError, Scan, Skipped, read_file, scan
from engine.data.images import DEFAULT_MAX_PIXELS, FITS, DecodedImage, decode_image
from engine.data.text import (
    SEPARATOR,
    TEXT_MODES,
    chunk_document,
    is_valid_utf8,
    pack_documents,
    tokens_to_str,
)


@dataclass(frozen=True)
class DataOptions:
    """How a data path is turned into tokens and split (the model config decides size/levels).

    fit: "crop" (resize to cover, centre-crop) or "pad" (resize to fit, black borders).
    text_mode: "pad" (sequences never span documents) or "pack" (see :mod:`engine.data.text`).
    val_fraction: share of sources held out for validation; seed: the split's seed.
    max_pixels: decompression-bomb guard, images above it are skipped unread.
    max_items: 0 = all; otherwise keep only the first this many items (in sorted file order).
    """

    fit: str = "crop"
    text_mode: str = "pad"
    val_fraction: float = 0.1
    seed: int = 0
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_items: int = 0

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, got {self.fit!r}")
        if self.text_mode not in TEXT_MODES:
            raise ValueError(f"text_mode must be one of {TEXT_MODES}, got {self.text_mode!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.max_pixels < 1 or self.max_items < 0:
            raise ValueError("max_pixels must be >= 1 and max_items >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class PreflightReport:
    """What a data path holds for a model, before any training.

    ``preview_tokens`` (k, L) int64 are items *after* preprocessing (render them with
    :mod:`engine.files.convert`); ``preview_text`` holds their decoded text for text data.
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (preview tokens as lists)."""
        return {
            "path": self.path,
            "modality": self.modality,
            "ok": self.ok,
            "problem": self.problem,
            "files_found": self.files_found,
            "files_used": self.files_used,
            "files_skipped": len(self.skipped),
            "skipped_by_reason": self.skipped_by_reason,
            "skipped": [s.to_dict() for s in self.skipped],
            "hidden_ignored": self.hidden_ignored,
            "items": self.items,
            "train_items": self.train_items,
            "val_items": self.val_items,
            "stats": self.stats,
            "preview_tokens": self.preview_tokens.tolist(),
            "preview_text": list(self.preview_text),
            "preview_sources": list(self.preview_sources),
            "fingerprint": self.fingerprint,
            "options": self.options,
            "model": self.model,
        }

    def summary(self, max_skipped: int = 10) -> str:
        """Human-readable multi-line text (``prime train --dry-run``)."""
        geo = self.model
        lines = [f"data: {self.path} ({self.modality})"]
        if self.modality == "image":
            lines.append(
                f"target: {geo['height']}x{geo['width']}x{geo['channels']}, {geo['num_classes']} levels, "
                f"fit={self.options['fit']}"
            )
        else:
            lines.append(
                f"target: {geo['seq_len']} bytes per sequence, text_mode={self.options['text_mode']}"
            )
        lines.append(
            f"files: {self.files_found} found, {self.files_used} used, {len(self.skipped)} skipped"
            + (f", {self.hidden_ignored} hidden ignored" if self.hidden_ignored else "")
        )
        if self.skipped:
            reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped_by_reason.items()))
            lines.append(f"skipped: {reasons}")
            for s in self.skipped[:max_skipped]:
                lines.append(f"  {s.path}: {s.reason} ({s.detail})")
            if len(self.skipped) > max_skipped:
                lines.append(f"  ... and {len(self.skipped) - max_skipped} more")
        lines.append(f"items: {self.items} ({self.train_items} train, {self.val_items} validation)")
        for key, value in self.stats.items():
            lines.append(f"  {key}: {value}")
        if self.preview_text:
            lines.append("preview (after preprocessing):")
            for src, text in zip(self.preview_sources, self.preview_text, strict=True):
                shown = text[:160].replace("\n", "\\n")
                lines.append(f"  [{src}] {shown}")
        elif len(self.preview_sources):
            lines.append(f"preview: {len(self.preview_sources)} items from {', '.join(self.preview_sources)}")
        lines.append(f"fingerprint: {self.fingerprint or '-'}")
        lines.append("ready to train" if self.ok else f"cannot train: {self.problem}")
        return "\n".join(lines)


def _spread(values: list[int]) -> str:
    if not values:
        return "-"
    arr = np.asarray(values)
    return f"min {int(arr.min())}, median {int(np.median(arr))}, max {int(arr.max())}"


def _geometry(config: ModelConfig) -> dict[str, Any]:
    return {
        "modality": config.modality,
        "num_classes": config.num_classes,
        "height": config.height,
        "width": config.width,
        "channels": config.channels,
        "seq_len": config.seq_length,
    }


def _incompatible(s: Scan, config: ModelConfig) -> str | None:
    if config.modality == "image" and not s.images and s.texts:
        return (
            f"{s.root} holds {len(s.texts)} text file(s) (.txt/.md) and no images, but the model is an image "
            f"model ({config.height}x{config.width}, {config.channels} channel(s)); use a folder of "
            "PNG/JPEG/WebP/BMP/GIF images or a text model"
        )
    if config.modality == "text" and not s.texts and s.images:
        return (
            f"{s.root} holds {len(s.images)} image file(s) and no .txt/.md files, but the model is a text "
            f"model ({config.seq_length} bytes per sequence); use text files or an image model"
        )
    return None


def _decode_file(s: Scan, rel: str, config: ModelConfig, opt: DataOptions) -> DecodedImage | Skipped:
    data = read_file(s.full(rel), rel)
    if isinstance(data, Skipped):
        return data
    return decode_image(
        data,
        rel,
        height=config.height,
        width=config.width,
        channels=config.channels,
        num_classes=config.num_classes,
        fit=opt.fit,
        max_pixels=opt.max_pixels,
    )


def _load_images(
    s: Scan, config: ModelConfig, opt: DataOptions, skipped: list[Skipped]
) -> tuple[list, list, dict]:
    """Decode images in sorted order; Pillow releases the GIL, so a few threads decode in parallel."""
    rows: list[np.ndarray] = []
    sources: list[str] = []
    sizes_w, sizes_h, modes, upscaled = [], [], Counter(), 0
    chunk = 64
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for start in range(0, len(s.images), chunk):
            if opt.max_items and len(rows) >= opt.max_items:
                break
            names = s.images[start : start + chunk]
            for rel, out in zip(
                names, pool.map(lambda r: _decode_file(s, r, config, opt), names), strict=True
            ):
                if opt.max_items and len(rows) >= opt.max_items:
                    break
                if isinstance(out, Skipped):
                    skipped.append(out)
                    continue
                rows.append(out.tokens)
                sources.append(rel)
                sizes_w.append(out.width)
                sizes_h.append(out.height)
                modes[out.mode] += 1
                upscaled += int(out.width < config.width or out.height < config.height)
    stats: dict[str, Any] = {
        "original width": _spread(sizes_w),
        "original height": _spread(sizes_h),
        "modes": dict(sorted(modes.items())),
        "upscaled": upscaled,
    }
    return rows, sources, stats


def _load_texts(s: Scan, opt: DataOptions, skipped: list[Skipped]) -> tuple[list[bytes], list[str], dict]:
    docs: list[bytes] = []
    sources: list[str] = []
    for rel in s.texts:
        data = read_file(s.full(rel), rel)
        if isinstance(data, Skipped):
            skipped.append(data)
            continue
        docs.append(data)
        sources.append(rel)
    lengths = [len(d) for d in docs]
    stats: dict[str, Any] = {
        "document bytes": _spread(lengths),
        "total bytes": int(sum(lengths)),
        "documents with invalid UTF-8 (kept as bytes)": sum(not is_valid_utf8(d) for d in docs),
    }
    return docs, sources, stats


def _build(
    path: str | os.PathLike[str], config: ModelConfig, opt: DataOptions
) -> tuple[TokenData | None, dict]:
    """Everything the report needs; ``data`` is None when there is a problem."""
    s = scan(path)
    info: dict[str, Any] = {"found": s.total, "hidden": s.hidden, "skipped": [], "stats": {}, "used": 0}
    skipped: list[Skipped] = info["skipped"]
    problem = _incompatible(s, config)
    if problem is None and s.total == 0:
        problem = f"{s.root}: the folder holds no files" + (
            f" ({s.hidden} hidden ignored)" if s.hidden else ""
        )
    if problem is not None:
        info["problem"] = problem
        return None, info
    L = config.seq_length
    if config.modality == "image":
        skipped.extend(
            Skipped(r, NOT_AN_IMAGE, f"extension {os.path.splitext(r)[1] or '(none)'}")
            for r in s.texts + s.others
        )
        rows, sources, stats = _load_images(s, config, opt, skipped)
        tokens = np.stack(rows) if rows else np.zeros((0, L), np.uint8)
        groups = np.arange(len(rows), dtype=np.int64)
    else:
        skipped.extend(
            Skipped(r, NOT_TEXT, f"extension {os.path.splitext(r)[1] or '(none)'}")
            for r in s.images + s.others
        )
        docs, sources, stats = _load_texts(s, opt, skipped)
        if opt.text_mode == "pad":
            chunks = [chunk_document(d, L) for d in docs]
            tokens = np.concatenate(chunks) if chunks else np.zeros((0, L), np.uint8)
            groups = np.repeat(np.arange(len(chunks)), [len(c) for c in chunks]).astype(np.int64)
        else:
            tokens, groups = (
                pack_documents(docs, L) if docs else (np.zeros((0, L), np.uint8), np.zeros(0, np.int64))
            )
        content = sum(len(d) for d in docs)
        if opt.text_mode == "pack" and docs:
            content += len(SEPARATOR) * (len(docs) - 1)
        stats["sequences before max_items"] = int(len(tokens))
        stats["newline padding share"] = round(1.0 - content / tokens.size, 4) if tokens.size else 0.0
        if opt.max_items:
            tokens, groups = tokens[: opt.max_items], groups[: opt.max_items]
    info["used"] = len(sources)
    info["sources"] = sources
    if len(tokens):
        levels = tokens.reshape(-1)
        counts = np.bincount(levels, minlength=config.num_classes)
        stats["token mean"] = round(float(levels.mean()), 3)
        stats["distinct tokens used"] = f"{int((counts > 0).sum())} of {config.num_classes}"
    info["stats"] = stats
    if len(tokens) == 0:
        n = s.total
        reasons = Counter(x.reason for x in skipped)
        why = ", ".join(f"{k} {r}" for r, k in sorted(reasons.items()))
        info["problem"] = f"{s.root}: none of the {n} file(s) can be used ({why}); see the skipped list"
        return None, info
    data = make_token_data(
        tokens,
        groups,
        tuple(sources),
        num_classes=config.num_classes,
        modality=config.modality,
        val_fraction=opt.val_fraction,
        seed=opt.seed,
        description={
            "source": str(s.root),
            "kind": "folder" if not s.is_file else "file",
            "options": opt.to_dict(),
        },
    )
    return data, info


def preflight(
    path: str | os.PathLike[str], config: ModelConfig, options: DataOptions | None = None, *, preview: int = 4
) -> PreflightReport:
    """Scan, decode and split ``path`` for ``config`` and report what was found, used and skipped.

    Raises only for a path that does not exist (``DataError``); every other data problem is
    reported in ``problem``.
    """
    opt = options or DataOptions()
    data, info = _build(path, config, opt)
    L = config.seq_length
    if data is not None:
        pool = data.train_index if len(data.train_index) else np.arange(len(data))
        k = min(preview, len(pool))
        pick = pool[np.linspace(0, len(pool) - 1, k).round().astype(np.int64)] if k else np.zeros(0, np.int64)
        preview_tokens = data.batch(pick) if k else torch.zeros((0, L), dtype=torch.int64)
        preview_sources = tuple(data.sources[int(data.groups[i])] for i in pick)
        preview_text = tuple(tokens_to_str(data.tokens[i]) for i in pick) if config.modality == "text" else ()
    else:
        preview_tokens, preview_sources, preview_text = torch.zeros((0, L), dtype=torch.int64), (), ()
    return PreflightReport(
        path=str(path),
        modality=config.modality,
        files_found=info["found"],
        files_used=info["used"],
        skipped=tuple(info["skipped"]),
        hidden_ignored=info["hidden"],
        items=len(data) if data is not None else 0,
        train_items=len(data.train_index) if data is not None else 0,
        val_items=len(data.val_index) if data is not None else 0,
        stats=info["stats"],
        preview_tokens=preview_tokens,
        preview_text=preview_text,
        preview_sources=preview_sources,
        fingerprint=data.fingerprint if data is not None else "",
        options=opt.to_dict(),
        model=_geometry(config),
        problem=info.get("problem"),
        data=data,
    )


def load_data(
    path: str | os.PathLike[str], config: ModelConfig, options: DataOptions | None = None
) -> TokenData:
    """The preprocessed, split data of ``path`` for ``config``; :class:`DataError` if unusable."""
    return preflight(path, config, options, preview=0).require_usable()
