"""Collecting items: image files and arrays, text files and records, into token blocks.

Used by :mod:`engine.data.preflight`; each loader appends to an :class:`Items` and to the skipped
list, and returns the statistics (label -> readable value) and whether any image had alpha.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.config import ModelConfig
from engine.data.arrays import read_arrays
from engine.data.files import BINARY, RECORD_EXTENSIONS, UNREADABLE, Scan, Skipped, read_file
from engine.data.images import DecodedImage, array_tokens, decode_image, parse_background
from engine.data.options import DataOptions
from engine.data.records import read_records
from engine.data.text import SEPARATOR, chunk_document, chunk_ids, is_valid_utf8, pack_documents, pack_ids
from engine.tokenizer import BpeTokenizer, tokenizer_of

ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def spread(values: list[int]) -> str:
    """Min, max and median as words, or the one value when all are equal."""
    arr = np.asarray(values)
    lo, mid, hi = int(arr.min()), int(np.median(arr)), int(arr.max())
    return f"{lo:,}" if lo == hi else f"{lo:,} to {hi:,} (median {mid:,})"


_MODE_WORDS = {
    "1": "black and white",
    "L": "grey",
    "LA": "grey with transparency",
    "P": "palette",
    "PA": "palette with transparency",
    "RGB": "RGB",
    "RGBA": "RGBA (with transparency)",
    "CMYK": "CMYK",
    "I;16": "16-bit grey",
    "I": "32-bit grey",
    "F": "floating-point grey",
}


def _count_words(counter: Counter) -> str:
    return ", ".join(f"{n:,} {_MODE_WORDS.get(k, k)}" for k, n in counter.most_common())


@dataclass
class Items:
    """Items being collected: token blocks, a source name per group, a group per item."""

    blocks: list[np.ndarray] = dataclasses.field(default_factory=list)
    sources: list[str] = dataclasses.field(default_factory=list)
    groups: list[np.ndarray] = dataclasses.field(default_factory=list)
    count: int = 0
    files_used: int = 0

    def room(self, limit: int) -> int:
        """How many more items ``max_items`` (0 = no limit) allows."""
        return limit - self.count if limit else 1 << 62

    def add(self, block: np.ndarray, sources: list[str], per_item: bool) -> None:
        """Append a block (n, L) with its sources: one per item, or one for the whole block."""
        first = len(self.sources)
        self.blocks.append(block)
        self.sources.extend(sources)
        n = len(block)
        g = np.arange(first, first + n) if per_item else np.full(n, first)
        self.groups.append(g.astype(np.int64))
        self.count += n


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
        background=parse_background(opt.background),
    )


def load_images(s: Scan, config: ModelConfig, opt: DataOptions, items: Items, skipped: list[Skipped]) -> dict:
    """Decode images in sorted order, a few threads in parallel (Pillow releases the GIL), then arrays."""
    sizes: list[tuple[int, int]] = []
    modes: Counter = Counter()
    upscaled = 0
    chunk = 64
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for start in range(0, len(s.images), chunk):
            if items.room(opt.max_items) <= 0:
                break
            names = s.images[start : start + chunk]
            for rel, out in zip(
                names, pool.map(lambda r: _decode_file(s, r, config, opt), names), strict=True
            ):
                if items.room(opt.max_items) <= 0:
                    break
                if isinstance(out, Skipped):
                    skipped.append(out)
                    continue
                items.add(out.tokens[None], [rel], per_item=True)
                items.files_used += 1
                sizes.append((out.width, out.height))
                modes[out.mode] += 1
                upscaled += int(out.width < config.width or out.height < config.height)
    background = parse_background(opt.background)
    array_items = 0
    for rel in s.arrays:
        if items.room(opt.max_items) <= 0:
            break
        got = read_arrays(s.full(rel), rel, opt.max_pixels)
        if isinstance(got, Skipped):
            skipped.append(got)
            continue
        arrays, left = got
        skipped.extend(left)
        for arr in arrays:
            imgs = arr.images[: items.room(opt.max_items)]
            if not len(imgs):
                break
            n, h, w, c = imgs.shape
            try:
                block = array_tokens(
                    imgs,
                    height=config.height,
                    width=config.width,
                    channels=config.channels,
                    num_classes=config.num_classes,
                    fit=opt.fit,
                    background=background,
                )
            except (OSError, ValueError) as exc:  # Pillow refusing an item
                skipped.append(Skipped(arr.name, UNREADABLE, str(exc)))
                continue
            items.add(block, [f"{arr.name}[{i}]" for i in range(n)], per_item=True)
            sizes.extend([(w, h)] * n)
            modes[{1: "L", 3: "RGB", 4: "RGBA"}[c]] += n
            upscaled += n * int(w < config.width or h < config.height)
            array_items += n
        items.files_used += int(bool(arrays))
    stats: dict[str, Any] = {}
    if sizes:
        ws, hs = [w for w, _ in sizes], [h for _, h in sizes]
        stats["original width"] = spread(ws) + " pixels"
        stats["original height"] = spread(hs) + " pixels"
        stats["colour modes"] = _count_words(modes)
        alpha = sum(n for m, n in modes.items() if m in ALPHA_MODES)
        if alpha:
            stats["transparency"] = (
                f"{alpha:,} of {len(sizes):,} images have an alpha channel, composited onto {opt.background}"
            )
        if upscaled:
            stats["enlarged"] = (
                f"{upscaled:,} of {len(sizes):,} images were smaller than {config.width}x{config.height} "
                "and were enlarged"
            )
        if array_items:
            stats["from arrays"] = f"{array_items:,} images from .npy/.npz/IDX files"
    return {"stats": stats, "alpha": any(m in ALPHA_MODES for m in modes)}


# --------------------------------------------------------------------------- text


def vocabulary_stats(tok: BpeTokenizer, n_bytes: int, n_ids: int) -> dict[str, str]:
    """Report lines on a BPE vocabulary and how well it covers these documents."""
    out: dict[str, str] = {}
    bpt = n_bytes / n_ids if n_ids else 0.0
    own = getattr(tok, "trained_bytes_per_token", None)
    line = f"{tok.vocab_size:,} entries (byte-level BPE), {bpt:.2f} bytes per token on this data"
    if own:
        line += f"; {own:.2f} on the data it was learned from"
        if bpt < 0.75 * own:
            line += (
                " \u2014 this data is covered poorly (another script or language?): the model sees it "
                "in short pieces"
            )
    out["vocabulary"] = line
    longest = tok.longest_tokens(6)
    out["longest tokens"] = ", ".join(repr(t.decode("utf-8", errors="replace")) for t in longest)
    return out


def read_documents(
    s: Scan, opt: DataOptions, items: Items, skipped: list[Skipped], warnings: list[str]
) -> tuple[list[bytes], list[int], int]:
    """Text files (and CSV/JSONL records with ``column``) -> (documents, group of each, record files)."""
    docs: list[bytes] = []
    doc_group: list[int] = []
    left_out = records_files = 0
    for rel in s.texts:
        data = read_file(s.full(rel), rel)
        if isinstance(data, Skipped):
            skipped.append(data)
            continue
        nul = data.find(b"\0")
        if nul >= 0:
            skipped.append(Skipped(rel, BINARY, f"a NUL byte at offset {nul:,}"))
            continue
        group = len(items.sources)
        if opt.column and rel.lower().endswith(RECORD_EXTENSIONS):
            rec = read_records(data, rel, opt.column)
            if isinstance(rec, Skipped):
                skipped.append(rec)
                continue
            records_files += 1
            left_out += rec.left_out
            if not rec.docs:
                skipped.append(Skipped(rel, "no records", "the file holds no records"))
                continue
            docs.extend(rec.docs)
            doc_group.extend([group] * len(rec.docs))
        else:
            docs.append(data)
            doc_group.append(group)
        items.sources.append(rel)
        items.files_used += 1
    if opt.column and not records_files:
        warnings.append(
            f"--column {opt.column!r} was given but no CSV/TSV/JSONL file had it; every file was used "
            "as plain text"
        )
    if left_out:
        warnings.append(
            f"{left_out:,} records were left out: not JSON objects, or without the column {opt.column!r}"
        )
    return docs, doc_group, records_files


def load_texts(
    s: Scan, config: ModelConfig, opt: DataOptions, items: Items, skipped: list[Skipped], warnings: list[str]
) -> dict:
    """Read text files (and CSV/JSONL records with ``column``) and cut them into sequences."""
    docs, doc_group, records_files = read_documents(s, opt, items, skipped, warnings)
    L = config.seq_length
    tok = tokenizer_of(config)
    unit = "bytes" if tok.kind == "bytes" else "tokens"
    n_ids = 0
    if tok.kind == "bytes":
        if opt.text_mode == "pad":
            chunks = [chunk_document(d, L) for d in docs]
            tokens = np.concatenate(chunks) if chunks else np.zeros((0, L), np.uint8)
            groups = np.repeat(np.asarray(doc_group, dtype=np.int64), [len(c) for c in chunks])
        elif docs:
            tokens, first = pack_documents(docs, L)
            groups = np.asarray(doc_group, dtype=np.int64)[first]
        else:
            tokens, groups = np.zeros((0, L), np.uint8), np.zeros(0, np.int64)
    else:
        pad = int(tok.encode(b"\n")[0])
        encoded = tok.encode_batch(docs)
        n_ids = sum(len(e) for e in encoded)
        if opt.text_mode == "pad":
            chunks = [chunk_ids(e, L, pad) for e in encoded]
            tokens = np.concatenate(chunks) if chunks else np.zeros((0, L), np.uint16)
            groups = np.repeat(np.asarray(doc_group, dtype=np.int64), [len(c) for c in chunks])
        elif docs:
            tokens, first = pack_ids(encoded, L, pad, tok.encode(SEPARATOR))
            groups = np.asarray(doc_group, dtype=np.int64)[first]
        else:
            tokens, groups = np.zeros((0, L), np.uint16), np.zeros(0, np.int64)
    content = sum(len(d) for d in docs)
    if opt.text_mode == "pack" and docs:
        content += len(SEPARATOR) * (len(docs) - 1)
    n_before = len(tokens)
    if opt.max_items:
        tokens, groups = tokens[: opt.max_items], groups[: opt.max_items]
    items.blocks.append(tokens)
    items.groups.append(groups)
    items.count = len(tokens)
    stats: dict[str, Any] = {}
    if docs:
        stats["documents"] = f"{len(docs):,} from {items.files_used:,} files" + (
            f" ({records_files:,} of them CSV/JSONL, column {opt.column!r})" if records_files else ""
        )
        stats["document size"] = spread([len(d) for d in docs]) + " bytes"
        stats["total size"] = f"{content:,} bytes"
        bad = sum(not is_valid_utf8(d) for d in docs)
        if bad:
            stats["invalid UTF-8"] = (
                f"{bad:,} documents are not valid UTF-8 (their bytes are kept as they are)"
            )
        stats["sequences"] = f"{n_before:,} of {L} {unit}" + (
            f", the first {len(tokens):,} used" if len(tokens) < n_before else ""
        )
        if tok.kind != "bytes":
            stats.update(vocabulary_stats(tok, content, n_ids))
            content = n_ids + (len(tok.encode(SEPARATOR)) * (len(docs) - 1) if opt.text_mode == "pack" else 0)
        if tokens.size:
            stats["padding"] = f"{1.0 - content / (n_before * L):.1%} of the tokens are newline padding"
    return {"stats": stats, "alpha": False}
