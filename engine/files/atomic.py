"""Writing files so that a crash, a Ctrl-C or a full disk never leaves a half-written one.

Every file the project writes goes through :func:`atomic_path` (or the helpers on top of it): the
data goes to a temporary file beside the target, is flushed to disk and only then renamed over it,
so readers see the old file or the new one, never a mix. A full disk becomes a
:class:`DiskFullError` that says how much space was needed; the old file is kept. Rewriting an
existing file keeps its permission bits; a new file gets ``0o666`` minus the umask, like ``open``.

Temporary names are ``.NAME.XXXXXXXX.tmp`` (:data:`TEMP_SUFFIX`), so :func:`stale_temporaries`
can find what a killed process left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TEMP_SUFFIX = ".tmp"


class DiskFullError(OSError):
    """No space left for a file; the message says how much was needed. The old file is kept."""


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)  # elsewhere: read it by setting it (briefly) and restoring it
    os.umask(umask)
    return umask


def set_default_permissions(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the mode a plain ``open(path, "w")`` would: ``0o666`` minus the umask.

    Temporary files from :func:`tempfile.mkstemp` are ``0600``; a saved file is an ordinary file.
    """
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~current_umask())


def fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _megabytes(num_bytes: int) -> str:
    return f"{max(num_bytes, 1) / 1e6:.1f}" if num_bytes < 10e6 else f"{num_bytes / 1e6:.0f}"


def disk_full(path: Path, needed: int) -> DiskFullError:
    """The error for a write of ``needed`` bytes to ``path`` that ran out of space."""
    return DiskFullError(errno.ENOSPC, f"the disk is full ({_megabytes(needed)} MB needed)", str(path))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], expected_size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends cleanly, it replaces ``path``.

    Write the new content to the yielded path (any library that takes a file name will do). On an
    exception, ``KeyboardInterrupt`` included, the temporary file is removed and ``path`` is left
    as it was.

    Args:
        path: the file to (re)write; its folder is created when missing.
        expected_size: bytes about to be written, for the "disk is full" message (default: what
            the temporary file reached).

    Raises:
        DiskFullError: no space left on the device (the old file is kept).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        old_mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        old_mode = None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        except OSError as exc:
            if exc.errno != errno.ENOSPC or isinstance(exc, DiskFullError):
                raise
            reached = tmp.stat().st_size if tmp.exists() else 0
            raise disk_full(path, max(expected_size or 0, reached)) from exc
        if old_mode is None:
            set_default_permissions(tmp)
        else:
            with contextlib.suppress(OSError):
                os.chmod(tmp, old_mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(directory)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """``open(path, mode)`` for writing, atomically (see :func:`atomic_path`); ``mode`` is "w" or "wb"."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding if mode == "w" else None) as handle:
        yield handle


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path, expected_size=len(data)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode(encoding))


def stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Temporary files that an interrupted :func:`atomic_path` left beside ``target``."""
    target = Path(target)
    try:
        candidates = list(target.parent.glob(f".{target.name}.*{TEMP_SUFFIX}"))
    except OSError:
        return []
    return sorted(p for p in candidates if p.is_file() and not p.is_symlink())
