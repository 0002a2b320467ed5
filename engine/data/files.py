"""Finding data files: a recursive, sorted scan that classifies each file by its extension.

Nothing here decodes a file. Hidden files and folders (names starting with ".") are ignored and
counted, symlinked folders are not followed (no loops), and paths are reported relative to the
scanned root with forward slashes so that reports and fingerprints are the same on every OS.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
TEXT_EXTENSIONS = (".txt", ".md")

# Reasons a file is skipped (the keys of PreflightReport.skipped_by_reason).
ZERO_BYTES = "zero bytes"
UNREADABLE = "unreadable"
VANISHED = "vanished"
NOT_AN_IMAGE = "not an image"
NOT_TEXT = "not a text file"
TRUNCATED = "truncated"
CORRUPT = "corrupt"
TOO_LARGE = "too large"


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
    """The files under a data path: ``root`` plus sorted relative paths by kind."""

    root: Path
    is_file: bool
    images: tuple[str, ...]
    texts: tuple[str, ...]
    others: tuple[str, ...]
    hidden: int

    @property
    def total(self) -> int:
        """Number of (non-hidden) files found."""
        return len(self.images) + len(self.texts) + len(self.others)

    def full(self, rel: str) -> Path:
        """Absolute path of a relative entry."""
        return self.root if self.is_file else self.root / rel


def scan(path: str | os.PathLike[str]) -> Scan:
    """List the files of ``path`` (a file or a folder, searched recursively), sorted.

    Raises:
        DataError: ``path`` does not exist or cannot be listed.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    if root.is_file():
        rel = [root.name]
        return _classify(root, True, rel, hidden=0)
    if not root.is_dir():
        raise DataError(f"{root}: not a file or folder")
    found: list[str] = []
    hidden = 0
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append, followlinks=False):
        keep = [d for d in dirnames if not d.startswith(".")]
        hidden += len(dirnames) - len(keep)
        dirnames[:] = sorted(keep)
        base = Path(dirpath).relative_to(root)
        for name in filenames:
            if name.startswith("."):
                hidden += 1
                continue
            found.append((base / name).as_posix())
    if errors and not found and errors[0].filename in (str(root), os.fspath(root)):
        raise DataError(f"{root}: cannot list folder ({errors[0].strerror})")
    return _classify(root, False, sorted(found), hidden)


def _classify(root: Path, is_file: bool, rel: list[str], hidden: int) -> Scan:
    images, texts, others = [], [], []
    for name in rel:
        ext = os.path.splitext(name)[1].lower()
        if ext in IMAGE_EXTENSIONS:
            images.append(name)
        elif ext in TEXT_EXTENSIONS:
            texts.append(name)
        else:
            others.append(name)
    return Scan(root, is_file, tuple(images), tuple(texts), tuple(others), hidden)


MAX_FILE_BYTES = 1 << 30  # 1 GiB: larger files are skipped (data is held in memory)


def read_file(full: Path, rel: str, max_bytes: int = MAX_FILE_BYTES) -> bytes | Skipped:
    """Read a whole file, or say why it cannot be used (vanished, unreadable, zero bytes, too large)."""
    try:
        info = full.stat()
        if not stat.S_ISREG(info.st_mode):  # a pipe or device would block or never end
            return Skipped(rel, UNREADABLE, "not a regular file")
        if info.st_size > max_bytes:
            return Skipped(
                rel, TOO_LARGE, f"{info.st_size / 2**20:,.0f} MiB exceeds {max_bytes / 2**20:,.0f} MiB"
            )
        data = full.read_bytes()
    except FileNotFoundError:
        return Skipped(rel, VANISHED, "the file disappeared after it was listed")
    except IsADirectoryError:
        return Skipped(rel, UNREADABLE, "is a folder")
    except OSError as exc:
        return Skipped(rel, UNREADABLE, exc.strerror or str(exc))
    if not data:
        return Skipped(rel, ZERO_BYTES, "the file is empty")
    return data
