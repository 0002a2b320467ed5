"""Tiny data files made in tests: images with PIL, a bomb header, text bytes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(
    path: Path, size: tuple[int, int] = (12, 8), mode: str = "RGB", seed: int = 0, fmt: str | None = None
) -> Path:
    """A random image of (width, height) in ``mode``, saved in the format of the suffix."""
    rng = np.random.default_rng(seed)
    w, h = size
    bands = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
    im = Image.fromarray(arr[..., 0] if bands == 1 else arr, mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid PNG header claiming width x height grey pixels, with (almost) no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data + _chunk(b"IEND", b""))
    return path


def image_folder(root: Path, n: int = 6, size: tuple[int, int] = (12, 8), mode: str = "RGB") -> Path:
    """``n`` random PNG images in ``root`` (two of them in a sub-folder)."""
    for i in range(n):
        sub = "sub/" if i % 3 == 2 else ""
        write_image(root / f"{sub}img{i}.png", size, mode, seed=i)
    return root
