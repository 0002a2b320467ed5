"""Loading a data path for a model config, and the pre-flight report shown before training.

:func:`preflight` never raises for bad data (only for a path that does not exist): it returns a
:class:`~engine.data.report.PreflightReport` whose ``problem`` says why nothing can be trained on.
:func:`load_data` returns the :class:`TokenData` and raises
:class:`~engine.data.files.DataError` with that message instead.

Image models take image files, ``.npy``/``.npz`` arrays and IDX files; text models take every
file whose content is text (any name), and with ``column`` the records of CSV/JSONL files.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np
import torch

from engine.config import ModelConfig
from engine.data.collect import Items, load_images, load_texts
from engine.data.dataset import TokenData, make_token_data
from engine.data.files import BINARY, FLAT, NOT_AN_IMAGE, UNREADABLE, Scan, Skipped, scan
from engine.data.options import DataOptions
from engine.data.quality import FLAT_WARN_SHARE, flat_mask
from engine.data.report import PreflightReport, printable
from engine.data.text import tokens_to_str
from engine.tokenizer import tokenizer_of

PREVIEW_ITEMS = 16
MAX_FLAT_LISTED = 1000  # the report names at most this many flat items (it counts all)


def _geometry(config: ModelConfig) -> dict[str, Any]:
    return {
        "modality": config.modality,
        "num_classes": config.num_classes,
        "height": config.height,
        "width": config.width,
        "channels": config.channels,
        "seq_len": config.seq_length,
        "tokenizer": config.tokenizer if config.modality == "text" else "",
    }


def _incompatible(s: Scan, config: ModelConfig) -> str | None:
    if config.modality == "image" and not (s.images or s.arrays) and s.texts:
        return (
            f"{s.root} holds {len(s.texts)} text file(s) and no images, but the model is an image "
            f"model ({config.height}x{config.width}, {config.channels} channel(s)); use a folder of "
            "PNG/JPEG/WebP/BMP/GIF images, .npy/.npz arrays or IDX files, or a text model"
        )
    if config.modality == "text" and not s.texts and (s.images or s.arrays):
        return (
            f"{s.root} holds {len(s.images) + len(s.arrays)} image or array file(s) and no text, but the "
            f"model is a text model ({config.seq_length} bytes per sequence); use text files or an image "
            "model"
        )
    return None


# --------------------------------------------------------------------------- building


def _build(
    path: str | os.PathLike[str], config: ModelConfig, opt: DataOptions
) -> tuple[TokenData | None, dict]:
    """Everything the report needs; ``data`` is None when there is a problem."""
    s = scan(path, opt.include, opt.exclude)
    skipped: list[Skipped] = list(s.problems)
    warnings: list[str] = []
    info: dict[str, Any] = {
        "found": s.total,
        "hidden": s.hidden,
        "excluded": s.excluded,
        "skipped": skipped,
        "warnings": warnings,
        "stats": {},
        "used": 0,
        "flat": [],
        "flat_items": 0,
        "flat_dropped": 0,
    }
    folders = [p for p in s.problems if p.path.endswith("/") and p.reason == UNREADABLE]
    if folders:
        warnings.append(
            f"{len(folders)} folder(s) could not be read and were skipped: "
            + ", ".join(p.path for p in folders[:5])
        )
    problem = _incompatible(s, config)
    if problem is None and s.total == 0:
        problem = f"{s.root}: the folder holds no files" + (
            f" ({s.hidden} hidden ignored)" if s.hidden else ""
        )
        if s.excluded:
            problem += f"; {s.excluded} file(s) were left out by the include/exclude patterns"
    if problem is not None:
        info["problem"] = problem
        return None, info
    items = Items()
    L = config.seq_length
    if config.modality == "image":
        skipped.extend(Skipped(r, NOT_AN_IMAGE, "a text file") for r in s.texts)
        skipped.extend(Skipped(u.path, NOT_AN_IMAGE, u.detail) for u in s.unusable)
        loaded = load_images(s, config, opt, items, skipped)
    else:
        skipped.extend(Skipped(r, BINARY, "an image file") for r in s.images)
        skipped.extend(Skipped(r, BINARY, "an array file (arrays are images)") for r in s.arrays)
        skipped.extend(s.unusable)
        loaded = load_texts(s, config, opt, items, skipped, warnings)
    skipped.sort(key=lambda x: x.path)
    if len(items.blocks) == 1:
        tokens = items.blocks[0]
    else:
        tokens = np.concatenate(items.blocks) if items.blocks else np.zeros((0, L), np.uint8)
    items.blocks.clear()
    groups = np.concatenate(items.groups) if items.groups else np.zeros(0, np.int64)
    sources = list(items.sources)
    stats = loaded["stats"]
    n_all = len(tokens)
    if n_all:
        flat = flat_mask(
            tokens, config.modality, config.channels, config.num_classes, vocabulary=config.vocabulary
        )
        n_flat = int(flat.sum())
        info["flat_items"] = n_flat
        info["flat"] = [sources[int(groups[i])] for i in np.flatnonzero(flat)[:MAX_FLAT_LISTED]]
        what = "one flat colour" if config.modality == "image" else "blank (whitespace or one repeated byte)"
        stats["flat items"] = f"{n_flat:,} of {n_all:,} ({n_flat / n_all:.1%}) are {what} after preprocessing"
        if n_flat == n_all:
            hint = (
                f"; transparency is composited onto {opt.background}: try another --background"
                if loaded["alpha"]
                else ""
            )
            info["problem"] = (
                f"every item ({n_all:,}) is {what} after preprocessing, nothing to learn from{hint}"
            )
            info["stats"] = stats
            return None, info
        if n_flat > FLAT_WARN_SHARE * n_all and not opt.drop_flat:
            hint = (
                f"; transparency is composited onto {opt.background}, another --background may help"
                if loaded["alpha"]
                else ""
            )
            warnings.insert(
                0,
                f"{n_flat:,} of {n_all:,} items ({n_flat / n_all:.0%}) are {what} after preprocessing and "
                "teach the model nothing: drop them with --drop-flat (the Train tab: \u201cDrop flat "
                f"items\u201d){hint}",
            )
        if opt.drop_flat and n_flat:
            keep = ~flat
            if config.modality == "image":
                for src in sorted({sources[int(g)] for g in groups[flat]}):
                    if "[" not in src:  # a whole image file
                        skipped.append(
                            Skipped(src, FLAT, "one flat colour after preprocessing (--drop-flat)")
                        )
            tokens, groups = tokens[keep], groups[keep]
            used, groups = np.unique(groups, return_inverse=True)
            sources = [sources[int(u)] for u in used]
            info["flat_dropped"] = n_flat
            stats["flat items"] += "; dropped"
            if config.modality == "image":
                items.files_used -= sum(1 for s_ in skipped if s_.reason == FLAT)
    info["used"] = items.files_used
    if len(tokens):
        levels = tokens.reshape(-1)
        counts = np.zeros(config.num_classes, dtype=np.int64)
        for start in range(0, len(levels), 1 << 22):  # in pieces: bincount copies to int64
            counts += np.bincount(levels[start : start + (1 << 22)], minlength=config.num_classes)
        mean = float(counts @ np.arange(config.num_classes)) / max(1, len(levels))
        stats["token values"] = f"{int((counts > 0).sum())} of {config.num_classes} used, mean {mean:.1f}"
    info["stats"] = stats
    if len(tokens) == 0:
        reasons = Counter(x.reason for x in skipped)
        why = ", ".join(f"{k} {r}" for r, k in sorted(reasons.items()))
        info["problem"] = f"{s.root}: none of the {s.total} file(s) can be used ({why}); see the skipped list"
        return None, info
    data = make_token_data(
        tokens,
        groups.astype(np.int64),
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
        vocabulary=config.vocabulary if config.modality == "text" else None,
    )
    return data, info


def preflight(
    path: str | os.PathLike[str],
    config: ModelConfig,
    options: DataOptions | None = None,
    *,
    preview: int = PREVIEW_ITEMS,
) -> PreflightReport:
    """Scan, decode and split ``path`` for ``config`` and report what was found, used and skipped.

    ``preview``: how many preprocessed items to include (evenly spread over the training items).

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
        preview_sources = tuple(printable(data.sources[int(data.groups[i])]) for i in pick)
        preview_text = (
            tuple(tokens_to_str(data.tokens[i], tokenizer_of(config), boundaries=True) for i in pick)
            if config.modality == "text"
            else ()
        )
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
        warnings=tuple(info["warnings"]),
        flat_items=info["flat_items"],
        flat_sources=tuple(info["flat"]),
        flat_dropped=info["flat_dropped"],
        excluded=info["excluded"],
    )


def load_data(
    path: str | os.PathLike[str], config: ModelConfig, options: DataOptions | None = None
) -> TokenData:
    """The preprocessed, split data of ``path`` for ``config``; :class:`DataError` if unusable."""
    return preflight(path, config, options, preview=0).require_usable()


__all__ = ["DataOptions", "PreflightReport", "load_data", "preflight"]
