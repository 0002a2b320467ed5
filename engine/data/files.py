"""Finding data files: a recursive, sorted scan that sorts each file into images, arrays, text.

Images are known by their extension; array files (``.npy``, ``.npz``, IDX files such as MNIST's
``train-images-idx3-ubyte.gz``) by their name or magic bytes; everything else is judged by its
content: the first 8 KiB are read and a file is text when it holds no NUL byte and is valid UTF-8
or mostly printable, whatever its name (README, LICENSE, ``copyright``, ``.py``, ``.csv``); the
rest is "binary". Only regular files are ever opened (``os.stat`` + ``S_ISREG`` first: a named
pipe or a device would block or never end). Hidden files and folders (names starting with ".")
are ignored and counted, symlinked folders are not followed (no loops) and are reported, folders
that cannot be listed are reported with the reason, and paths are relative to the scanned root
with forward slashes so that reports and fingerprints are the same on every OS.
"""

from __future__ import annotations

import errno
import fnmatch
import gzip
import os
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
TEXT_EXTENSIONS = (".txt", ".md")  # always tried as text (content still decides)
ARRAY_EXTENSIONS = (".npy", ".npz")
RECORD_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson")  # split into records with a column

# Reasons a file is skipped (the keys of PreflightReport.skipped_by_reason).
ZERO_BYTES = "zero bytes"
UNREADABLE = "unreadable"
VANISHED = "vanished"
NOT_AN_IMAGE = "not an image"
NOT_TEXT = "not a text file"
BINARY = "binary"
TRUNCATED = "truncated"
CORRUPT = "corrupt"
TOO_LARGE = "too large"
WRONG_TYPE = "wrong data type"
WRONG_SHAPE = "wrong shape"
NO_COLUMN = "no such column"
FLAT = "flat"
NOT_FOLLOWED = "symlinked folder"

SNIFF_BYTES = 8192
MAX_FILE_BYTES = 1 << 30  # 1 GiB: larger files are skipped (data is held in memory)


class DataError(ValueError):
    """Data that cannot be used for training or evaluation; the message says why and what to do."""


@dataclass(frozen=True)
class Skipped:
    """A file that was found but not used: ``path`` (relative), ``reason`` (a category), ``detail``."""

    path: str
    reason: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready."""
        return {"path": self.path, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class Scan:
    """The files under a data path: ``root`` plus sorted relative paths by kind.

    ``others`` are files that are neither images, arrays nor text (binary), with their reasons in
    ``unusable``; ``problems`` are entries that could not be looked at (unreadable folders and
    files, pipes, symlink loops, symlinked folders); ``excluded`` counts files left out by the
    include/exclude patterns.
    """

    root: Path
    is_file: bool
    images: tuple[str, ...]
    texts: tuple[str, ...]
    others: tuple[str, ...]
    hidden: int
    arrays: tuple[str, ...] = ()
    unusable: tuple[Skipped, ...] = ()
    problems: tuple[Skipped, ...] = ()
    excluded: int = 0
    _sizes: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def total(self) -> int:
        """Number of (non-hidden, not excluded) entries found, problems included."""
        return len(self.images) + len(self.texts) + len(self.others) + len(self.arrays) + len(self.problems)

    def full(self, rel: str) -> Path:
        """Absolute path of a relative entry."""
        return self.root if self.is_file else self.root / rel


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    """True when ``rel`` (or its file name) matches one of the glob ``patterns``."""
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def regular_file_size(full: Path, rel: str) -> int | Skipped:
    """The size of a regular file, or why it cannot be opened (never opens anything)."""
    try:
        info = os.stat(full)
    except FileNotFoundError:
        if os.path.islink(full):
            return Skipped(rel, VANISHED, "a symlink to a file that does not exist (or vanished)")
        return Skipped(rel, VANISHED, "the file disappeared after it was listed")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Skipped(rel, UNREADABLE, "a symlink loop")
        return Skipped(rel, UNREADABLE, exc.strerror or str(exc))
    if stat.S_ISDIR(info.st_mode):
        return Skipped(rel, UNREADABLE, "is a folder")
    if not stat.S_ISREG(info.st_mode):  # a pipe or device would block or never end
        kind = "a named pipe" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        return Skipped(rel, UNREADABLE, f"not a regular file ({kind}); only regular files are read")
    return int(info.st_size)


def open_regular(full: Path, rel: str) -> tuple[BinaryIO, int] | Skipped:
    """(binary file object, size) of a regular file, or why it is not opened.

    ``os.stat`` + ``S_ISREG`` come first, then the file is opened non-blocking and checked again
    with ``fstat`` (a file swapped for a pipe in between is still refused without blocking).
    """
    size = regular_file_size(full, rel)
    if isinstance(size, Skipped):
        return size
    try:
        fd = os.open(full, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return Skipped(rel, VANISHED, "the file disappeared after it was listed")
    except IsADirectoryError:
        return Skipped(rel, UNREADABLE, "is a folder")
    except OSError as exc:
        return Skipped(rel, UNREADABLE, exc.strerror or str(exc))
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return Skipped(rel, UNREADABLE, "not a regular file; only regular files are read")
    return os.fdopen(fd, "rb"), int(info.st_size)


def read_head(full: Path, rel: str, n: int = SNIFF_BYTES) -> bytes | Skipped:
    """The first ``n`` bytes of a regular file, or why it cannot be read."""
    opened = open_regular(full, rel)
    if isinstance(opened, Skipped):
        return opened
    f, size = opened
    with f:
        if size == 0:
            return Skipped(rel, ZERO_BYTES, "the file is empty")
        try:
            return f.read(n)
        except OSError as exc:
            return Skipped(rel, UNREADABLE, exc.strerror or str(exc))


def _walk(root: Path, problems: list[Skipped]) -> tuple[list[str], int]:
    """Relative paths of the files under ``root`` (sorted), and the hidden entries skipped."""
    found: list[str] = []
    hidden = 0
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        where = root / rel_dir if rel_dir else root
        try:
            with os.scandir(where) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            why = exc.strerror or str(exc)
            if not rel_dir:
                raise DataError(f"{root}: cannot list folder ({why})") from None
            problems.append(Skipped(rel_dir + "/", UNREADABLE, f"folder not read: {why}"))
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                hidden += 1
                continue
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            try:
                is_dir = e.is_dir(follow_symlinks=False)
                link_to_dir = not is_dir and e.is_symlink() and os.path.isdir(e.path)
            except OSError as exc:
                problems.append(Skipped(rel, UNREADABLE, exc.strerror or str(exc)))
                continue
            if is_dir:
                subdirs.append(rel)
            elif link_to_dir:
                problems.append(Skipped(rel + "/", NOT_FOLLOWED, "links to folders are not followed"))
            else:
                found.append(rel)
        stack.extend(reversed(subdirs))
    return sorted(found), hidden


def scan(
    path: str | os.PathLike[str],
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    sniff: bool = True,
) -> Scan:
    """List the files of ``path`` (a file or a folder, searched recursively), sorted and classified.

    ``include``/``exclude``: glob patterns matched against the relative path or the file name
    (with ``include``, only matching files are used). ``sniff=False`` skips reading file heads
    (non-image files are then all "others").

    Raises:
        DataError: ``path`` does not exist or cannot be listed.
    """
    root = Path(path).expanduser()
    problems: list[Skipped] = []
    if not root.exists() and not root.is_symlink():
        raise DataError(f"{root}: no such file or folder")
    if root.is_dir():
        rel, hidden = _walk(root, problems)
        is_file = False
    else:
        size = regular_file_size(root, root.name)
        if isinstance(size, Skipped):
            raise DataError(f"{root}: {size.detail}")
        rel, hidden, is_file = [root.name], 0, True
    kept = [r for r in rel if (not include or _matches(r, include)) and not _matches(r, exclude)]
    images, arrays, texts, others, unusable = [], [], [], [], []
    for name in kept:
        ext = os.path.splitext(name)[1].lower()
        if ext in IMAGE_EXTENSIONS:
            images.append(name)
            continue
        if ext in ARRAY_EXTENSIONS:
            arrays.append(name)
            continue
        if not sniff:
            others.append(name)
            continue
        full = root if is_file else root / name
        head = read_head(full, name)
        if isinstance(head, Skipped):
            problems.append(head)
        elif _is_idx(head) or (_is_gzip(head) and _gzip_is_idx(full)):
            arrays.append(name)
        elif looks_like_text(head):
            texts.append(name)
        else:
            others.append(name)
            unusable.append(Skipped(name, BINARY, _binary_detail(head)))
    return Scan(
        root,
        is_file,
        tuple(images),
        tuple(texts),
        tuple(others),
        hidden,
        arrays=tuple(arrays),
        unusable=tuple(unusable),
        problems=tuple(problems),
        excluded=len(rel) - len(kept),
    )


# --------------------------------------------------------------------------- content sniffing

_TEXT_CONTROLS = frozenset(b"\t\n\r\f\v\b\x1b")


def looks_like_text(data: bytes) -> bool:
    """True for bytes with no NUL that are valid UTF-8, or at least 95% printable (Latin-1 style).

    Either way at most 5% may be control codes other than tab, newline, carriage return, form feed,
    vertical tab, backspace and escape.

    ``data`` may be a file's head: a UTF-8 sequence cut at the end does not count against it.
    """
    if not data or b"\0" in data:
        return False
    controls = sum(1 for b in data if (b < 32 and b not in _TEXT_CONTROLS) or b == 127)
    if controls > 0.05 * len(data):  # ASCII control codes are valid UTF-8, but not text
        return False
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return True
    printable = sum(1 for b in data if 32 <= b < 127 or b >= 0xA0 or b in _TEXT_CONTROLS)
    return printable >= 0.95 * len(data)


def _is_gzip(head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b"


def _is_idx(head: bytes) -> bool:
    """IDX magic: two zero bytes, a type code (0x08..0x0E) and 1..4 dimensions."""
    return len(head) >= 8 and head[:2] == b"\0\0" and head[2] in (8, 9, 11, 12, 13, 14) and 1 <= head[3] <= 4


def _gzip_is_idx(full: Path) -> bool:
    opened = open_regular(full, full.name)
    if isinstance(opened, Skipped):
        return False
    raw, _size = opened
    try:
        with raw, gzip.GzipFile(fileobj=raw, mode="rb") as f:
            return _is_idx(f.read(8))
    except (OSError, EOFError, zlib.error):
        return False


def _binary_detail(head: bytes) -> str:
    if _is_gzip(head):
        return "gzip-compressed (not an IDX file)"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive"
    if b"\0" in head:
        return "holds NUL bytes"
    return "not UTF-8 and under 95% printable"


def read_file(full: Path, rel: str, max_bytes: int = MAX_FILE_BYTES) -> bytes | Skipped:
    """Read a whole regular file, or say why it cannot be used (vanished, unreadable, empty, too large)."""
    opened = open_regular(full, rel)
    if isinstance(opened, Skipped):
        return opened
    f, size = opened
    with f:
        if size > max_bytes:
            return Skipped(rel, TOO_LARGE, f"{size / 2**20:,.0f} MiB exceeds {max_bytes / 2**20:,.0f} MiB")
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            return Skipped(rel, UNREADABLE, exc.strerror or str(exc))
    if not data:
        return Skipped(rel, ZERO_BYTES, "the file is empty")
    if len(data) > max_bytes:
        return Skipped(rel, TOO_LARGE, f"grew past {max_bytes / 2**20:,.0f} MiB while being read")
    return data
