"""Image arrays from files: ``.npy``, ``.npz`` and IDX (the MNIST format, gzipped or not).

Each file holds uint8 images N x H x W (grey) or N x H x W x C (C = 1, 3 or 4; 4 is RGBA). The
header is parsed first and its shape checked against limits *before* anything is allocated:
a file that claims more bytes than it holds is "truncated", one with bytes after the data is
"corrupt", other dtypes are "wrong data type" and other ranks "wrong shape". Data is then
read in one bounded read of exactly the size the (checked) header announces (no memory map: a
file cut short while mapped would kill the process). Nothing is unpickled: object arrays (which is how numpy
stores ragged data) are refused, and ``allow_pickle`` is never set.

IDX (http://yann.lecun.com/exdb/mnist/, big-endian): bytes 0-1 zero, byte 2 the type (0x08 =
unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), byte 3 the
number of dimensions, then one 4-byte size per dimension, then the data. 1-D files (labels) are
skipped: they are not images; :func:`read_idx_labels` reads them for the benchmarks that need them.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from engine.data.files import (
    CORRUPT,
    MAX_FILE_BYTES,
    TOO_LARGE,
    TRUNCATED,
    WRONG_SHAPE,
    WRONG_TYPE,
    DataError,
    Skipped,
    open_regular,
)

MAX_ARRAY_BYTES = MAX_FILE_BYTES  # decoded size limit of one file's images (1 GiB)
IDX_TYPES = {8: "uint8", 9: "int8", 11: "int16", 12: "int32", 13: "float32", 14: "float64"}
_NPY_MAGIC = b"\x93NUMPY"
NOT_IMAGES = "labels, not images"
SHAPE_HINT = "save uint8 images of shape N x H x W or N x H x W x C (C = 1, 3 or 4)"


@dataclass(frozen=True)
class ImageArray:
    """uint8 images (N, H, W, C) from one file (or one ``.npz`` member, named ``file:member``)."""

    name: str
    images: np.ndarray  # (N, H, W, C) uint8


def _check_shape(rel: str, shape: tuple[int, ...], dtype: str, max_pixels: int) -> Skipped | None:
    """Why ``shape``/``dtype`` cannot be images, or None."""
    if dtype != "uint8":
        return Skipped(rel, WRONG_TYPE, f"holds {dtype} values; {SHAPE_HINT}")
    if len(shape) == 1:
        return Skipped(
            rel, NOT_IMAGES, f"one dimension ({shape[0]:,} values), not images; labels are not used"
        )
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3, 4)):
        return Skipped(rel, WRONG_SHAPE, f"shape {' x '.join(map(str, shape))}; {SHAPE_HINT}")
    if min(shape) < 1:
        return Skipped(rel, WRONG_SHAPE, f"shape {' x '.join(map(str, shape))} holds no images")
    if shape[1] * shape[2] > max_pixels:
        return Skipped(rel, TOO_LARGE, f"{shape[2]}x{shape[1]} images exceed the pixel limit {max_pixels:,}")
    nbytes = int(np.prod(np.asarray(shape, dtype=object)))
    if nbytes > MAX_ARRAY_BYTES:
        return Skipped(
            rel, TOO_LARGE, f"{nbytes / 2**20:,.0f} MiB of images exceeds {MAX_ARRAY_BYTES / 2**20:,.0f} MiB"
        )
    return None


def _as_nhwc(arr: np.ndarray) -> np.ndarray:
    return arr[..., None] if arr.ndim == 3 else arr  # (N, H, W, C)


def _npy_header(f: BinaryIO, rel: str) -> tuple[tuple[int, ...], bool, np.dtype] | Skipped:
    try:
        major, _minor = np.lib.format.read_magic(f)
        if major == 1:
            return np.lib.format.read_array_header_1_0(f, max_header_size=10_000)
        if major in (2, 3):
            return np.lib.format.read_array_header_2_0(f, max_header_size=10_000)
        return Skipped(rel, CORRUPT, f"unknown .npy format version {major}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        return Skipped(rel, CORRUPT, f"bad .npy header ({exc})")


def _dtype_name(dtype: np.dtype) -> str:
    if dtype.hasobject:
        return "Python objects (numpy's form of ragged or mixed items; never unpickled)"
    return str(dtype)


def read_npy(full: Path, rel: str, max_pixels: int) -> list[ImageArray] | Skipped:
    """The images of a ``.npy`` file (read in one bounded read after the header checks)."""
    opened = open_regular(full, rel)
    if isinstance(opened, Skipped):
        return opened
    f, size = opened
    with f:
        if f.read(6) != _NPY_MAGIC:
            return Skipped(rel, CORRUPT, "not a .npy file (no NUMPY magic)")
        f.seek(0)
        header = _npy_header(f, rel)
        if isinstance(header, Skipped):
            return header
        shape, fortran, dtype = header
        offset = f.tell()
        bad = _check_shape(rel, tuple(shape), _dtype_name(dtype), max_pixels)
        if bad is not None:
            return bad
        n = int(np.prod(shape))
        if size < offset + n:
            return Skipped(rel, TRUNCATED, f"holds {size:,} bytes, the header announces {offset + n:,}")
        if size > offset + n:
            return Skipped(rel, CORRUPT, f"{size - offset - n:,} bytes after the array data")
        buf = _read_exact(f, n)
    if buf is None:
        return Skipped(rel, TRUNCATED, "the file became shorter while it was read")
    return [ImageArray(rel, _as_nhwc(buf.reshape(tuple(shape), order="F" if fortran else "C")))]


def _read_exact(f: BinaryIO, n: int) -> np.ndarray | None:
    """Exactly ``n`` bytes of ``f`` into a new uint8 array (size checked by the caller), or None if short.

    A plain read, not a memory map: a file cut short while mapped would kill the process (SIGBUS).
    """
    buf = np.empty(n, dtype=np.uint8)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            return None
        got += k
    return buf


def read_npz(full: Path, rel: str, max_pixels: int) -> tuple[list[ImageArray], list[Skipped]] | Skipped:
    """The image members of an ``.npz`` file, and the members skipped (labels, other dtypes)."""
    opened = open_regular(full, rel)
    if isinstance(opened, Skipped):
        return opened
    f, _size = opened
    found: list[ImageArray] = []
    left: list[Skipped] = []
    total = 0
    try:
        with f, zipfile.ZipFile(f) as zf:
            for info in zf.infolist():
                name = f"{rel}:{info.filename.removesuffix('.npy')}"
                if info.is_dir():
                    continue
                with zf.open(info) as member:
                    header = _npy_header(member, name)
                    if isinstance(header, Skipped):
                        left.append(header)
                        continue
                    shape, fortran, dtype = header
                    bad = _check_shape(name, tuple(shape), _dtype_name(dtype), max_pixels)
                    if bad is not None:
                        left.append(bad)
                        continue
                    n = int(np.prod(shape))
                    total += n
                    if total > MAX_ARRAY_BYTES:
                        return Skipped(
                            rel, TOO_LARGE, f"the images exceed {MAX_ARRAY_BYTES / 2**20:,.0f} MiB"
                        )
                    data = member.read(n + 1)
                if len(data) < n:
                    left.append(
                        Skipped(
                            name, TRUNCATED, f"holds {len(data):,} data bytes, the header announces {n:,}"
                        )
                    )
                    continue
                if len(data) > n:
                    left.append(Skipped(name, CORRUPT, "bytes after the array data"))
                    continue
                arr = np.frombuffer(data, dtype=np.uint8).reshape(tuple(shape), order="F" if fortran else "C")
                found.append(ImageArray(name, _as_nhwc(arr)))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
        text = str(exc)
        reason = TRUNCATED if ("truncated" in text.lower() or isinstance(exc, EOFError)) else CORRUPT
        return Skipped(rel, reason, f"bad .npz archive ({text or type(exc).__name__})")
    if not found and left:
        worst = left[0]
        return Skipped(rel, worst.reason, f"no image array: {worst.path.split(':')[-1]} {worst.detail}")
    return found, left


def _read_idx_payload(
    full: Path,
    rel: str,
    check: Callable[[tuple[int, ...], int], Skipped | None],
    unit: str,
    name: str,
) -> tuple[tuple[int, ...], np.ndarray] | Skipped:
    """An IDX file's shape and data bytes (gzipped or not), or why it is skipped.

    ``check(shape, type code)`` refuses a header before any data is read, and the size the header
    announces is checked against the file before one bounded read. ``unit`` and ``name`` word
    the messages ("holds 9 {unit}", "bytes after {name}").
    """
    opened = open_regular(full, rel)
    if isinstance(opened, Skipped):
        return opened
    raw, size = opened
    with raw:
        packed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        try:
            f: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if packed else raw  # type: ignore[assignment]
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in IDX_TYPES or not 1 <= head[3] <= 4:
                return Skipped(rel, CORRUPT, "not an IDX file (bad magic bytes)")
            dims = f.read(4 * head[3])
            if len(dims) < 4 * head[3]:
                return Skipped(rel, TRUNCATED, "the IDX header is cut short")
            shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(head[3]))
            bad = check(shape, head[2])
            if bad is not None:
                return bad
            n = int(np.prod(shape))
            start = 4 + 4 * len(shape)
            if not packed and size != start + n:
                have = size - start
                if have < n:
                    return Skipped(rel, TRUNCATED, f"holds {have:,} {unit}, the header announces {n:,}")
                return Skipped(rel, CORRUPT, f"{have - n:,} bytes after {name}")
            if not packed:
                buf = _read_exact(f, n)
                if buf is None:
                    return Skipped(rel, TRUNCATED, "the file became shorter while it was read")
                return shape, buf
            data = f.read(n + 1)
        except (gzip.BadGzipFile, zlib.error, OSError, ValueError) as exc:
            return Skipped(rel, CORRUPT, f"bad gzip data ({exc})")
        except EOFError as exc:
            return Skipped(rel, TRUNCATED, f"the gzip stream is cut short ({exc})")
    if len(data) < n:
        return Skipped(rel, TRUNCATED, f"holds {len(data):,} {unit}, the header announces {n:,}")
    if len(data) > n:
        return Skipped(rel, CORRUPT, f"bytes after {name}")
    return shape, np.frombuffer(data, dtype=np.uint8)


def read_idx(full: Path, rel: str, max_pixels: int) -> list[ImageArray] | Skipped:
    """The images of an IDX file (gzipped or not), after checking the header against the size."""
    got = _read_idx_payload(
        full,
        rel,
        lambda shape, code: _check_shape(rel, shape, IDX_TYPES[code], max_pixels),
        "data bytes",
        "the image data",
    )
    if isinstance(got, Skipped):
        return got
    shape, data = got
    return [ImageArray(rel, _as_nhwc(data.reshape(shape)))]


def read_idx_labels(path: str | Path, count: int | None = None) -> np.ndarray:
    """The uint8 labels (N,) of an IDX label file (gzipped or not; MNIST's ``*-labels-idx1-ubyte``).

    The same reader as :func:`read_idx`: magic ``0x00000801`` (unsigned bytes, one dimension),
    the count from the header checked against the limit and the file size before anything is
    read, one bounded read. ``count``: the number of images the labels belong to (they must
    match). Raises :class:`~engine.data.files.DataError` saying what is wrong.
    """
    full = Path(path)
    rel = str(full)

    def check(shape: tuple[int, ...], code: int) -> Skipped | None:
        if code != 8 or len(shape) != 1:
            return Skipped(rel, CORRUPT, "not an IDX label file (magic 0x00000801 expected)")
        if shape[0] > MAX_ARRAY_BYTES:
            return Skipped(rel, TOO_LARGE, f"{shape[0]:,} labels exceed {MAX_ARRAY_BYTES:,}")
        if count is not None and shape[0] != count:
            return Skipped(
                rel, WRONG_SHAPE, f"holds {shape[0]:,} labels for {count:,} images; the files do not match"
            )
        return None

    got = _read_idx_payload(full, rel, check, "labels", "the labels")
    if isinstance(got, Skipped):
        raise DataError(f"{rel}: {got.reason}: {got.detail}")
    return got[1].copy()


def read_arrays(full: Path, rel: str, max_pixels: int) -> tuple[list[ImageArray], list[Skipped]] | Skipped:
    """Dispatch on the file kind: (image arrays, skipped members) or why the file is skipped."""
    low = rel.lower()
    if low.endswith(".npz"):
        return read_npz(full, rel, max_pixels)
    out = read_npy(full, rel, max_pixels) if low.endswith(".npy") else read_idx(full, rel, max_pixels)
    return out if isinstance(out, Skipped) else (out, [])


__all__ = ["ImageArray", "read_arrays", "read_idx", "read_idx_labels", "read_npy", "read_npz"]
