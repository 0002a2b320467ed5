import errno
import os
import stat

import pytest

from engine.files.atomic import (
    DiskFullError,
    atomic_open,
    atomic_path,
    stale_temporaries,
    write_bytes,
    write_text,
)


def test_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert stale_temporaries(target) == []
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_rewriting_keeps_the_files_mode(tmp_path):
    target = tmp_path / "private.bin"
    write_bytes(target, b"1")
    os.chmod(target, 0o600)
    write_bytes(target, b"2")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    fresh = write_bytes(tmp_path / "fresh.bin", b"x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_full_disk_keeps_the_old_file_and_says_how_much_was_needed(tmp_path):
    target = tmp_path / "image.png"
    write_bytes(target, b"good")
    with pytest.raises(DiskFullError, match=r"the disk is full \(2\.0 MB needed\)") as caught:
        with atomic_path(target, expected_size=2_000_000) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_bytes() == b"good"
    assert stale_temporaries(target) == []


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_write_keeps_the_old_file(tmp_path, exc):
    target = tmp_path / "notes.txt"
    write_text(target, "kept")
    with pytest.raises(exc):
        with atomic_open(target, "w", encoding="utf-8") as handle:
            handle.write("half")
            raise exc()
    assert target.read_text() == "kept"
    assert stale_temporaries(target) == []


def test_stale_temporaries_finds_what_a_killed_writer_left(tmp_path):
    target = tmp_path / "m.safetensors"
    left = tmp_path / ".m.safetensors.abc123.tmp"
    left.write_bytes(b"x")
    (tmp_path / ".other.safetensors.abc.tmp").write_bytes(b"y")
    assert stale_temporaries(target) == [left]


def test_atomic_open_refuses_append(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "x", "a"):
            pass
