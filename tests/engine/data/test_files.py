"""Scanning a data path: text by content, include/exclude, and entries that must not be opened."""

from __future__ import annotations

import os

import pytest

import engine.data.files as files
from engine.config import ModelConfig
from engine.data import DataOptions, preflight
from engine.data.files import looks_like_text, scan
from tests.engine.data._files import write_image

TXT = ModelConfig(modality="text", num_classes=256, seq_len=16, d_model=16, n_heads=2)


def test_text_is_known_by_its_content_not_its_name(tmp_path) -> None:
    (tmp_path / "README").write_text("Read me first.\n")
    (tmp_path / "LICENSE").write_text("Permission is hereby granted, free of charge...\n")
    (tmp_path / "pkg.copyright").write_text("Copyright 2026 Someone\n")
    (tmp_path / "odd name with spaces.rst~").write_text("A title\n=======\n")
    (tmp_path / "script.py").write_text("print('hi')\n")
    (tmp_path / "latin1.html").write_bytes("<p>café déjà vu</p>\n".encode("latin-1"))
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "noise").write_bytes(os.urandom(2048).replace(b"\0", b"\1"))  # no NUL, not text
    write_image(tmp_path / "a.png")
    report = preflight(tmp_path, TXT, DataOptions(val_fraction=0.0))
    assert report.ok, report.problem
    used = set(report.data.sources)
    assert used == {
        "README",
        "LICENSE",
        "pkg.copyright",
        "odd name with spaces.rst~",
        "script.py",
        "latin1.html",
    }
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons == {"blob.bin": "binary", "noise": "binary", "a.png": "binary"}
    assert report.stats["invalid UTF-8"].startswith("1 documents")  # the Latin-1 file, kept as bytes


def test_looks_like_text_rules() -> None:
    assert looks_like_text("naïve ✓ text".encode())
    assert looks_like_text(b"abc " * 10 + "✓".encode()[:2])  # a UTF-8 sequence cut at the end
    assert not looks_like_text(b"text\0with a NUL")
    assert not looks_like_text(b"")
    assert looks_like_text("résumé ".encode("latin-1") * 10)
    assert not looks_like_text(bytes(range(1, 32)) * 10)


def test_include_and_exclude_patterns(tmp_path) -> None:
    for name in ("a.txt", "b.txt", "notes.md", "sub/c.txt", "sub/skip.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"content of {name}\n")
    s = scan(tmp_path, include=("*.txt",), exclude=("sub/skip*",))
    assert s.texts == ("a.txt", "b.txt", "sub/c.txt") and s.excluded == 2
    report = preflight(tmp_path, TXT, DataOptions(include=("sub/*",), val_fraction=0.0))
    assert report.data.sources == ("sub/c.txt", "sub/skip.txt") and report.excluded == 3
    assert "3 left out by the include/exclude patterns" in report.summary()
    nothing = preflight(tmp_path, TXT, DataOptions(include=("*.csv",)))
    assert not nothing.ok and "left out by the include/exclude patterns" in nothing.problem
    with pytest.raises(ValueError, match="glob patterns"):
        DataOptions(include="*.txt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_is_never_opened_even_without_an_extension(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("some words here\n")
    os.mkfifo(tmp_path / "pipe")  # sniffing it would block forever
    os.mkfifo(tmp_path / "pipe.npy")
    report = preflight(tmp_path, TXT)
    assert report.ok and report.files_used == 1
    skipped = {s.path: (s.reason, s.detail) for s in report.skipped}
    assert skipped["pipe"][0] == "unreadable" and "named pipe" in skipped["pipe"][1]
    assert skipped["pipe.npy"][0] == "binary" or skipped["pipe.npy"][0] == "unreadable"


def test_symlink_loop_and_symlinked_folder_are_reported(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("real text\n")
    os.symlink(tmp_path / "loop2", tmp_path / "loop1")
    os.symlink(tmp_path / "loop1", tmp_path / "loop2")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "b.txt").write_text("more text\n")
    os.symlink(tmp_path, tmp_path / "real" / "up")  # a folder loop if followed
    report = preflight(tmp_path, TXT, DataOptions(val_fraction=0.0))
    assert report.ok and report.data.sources == ("a.txt", "real/b.txt")
    skipped = {s.path: (s.reason, s.detail) for s in report.skipped}
    assert skipped["loop1"] == ("unreadable", "a symlink loop")
    assert skipped["real/up/"][0] == "symlinked folder"


def test_an_unreadable_subfolder_is_reported_with_its_reason(tmp_path, monkeypatch) -> None:
    # Running as root makes chmod 000 ineffective, so the listing error is injected: os.scandir on
    # the real folder "locked" raises what an unreadable folder raises for a normal user.
    (tmp_path / "a.txt").write_text("readable\n")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "b.txt").write_text("never read\n")
    real = os.scandir

    def scandir(path):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(files.os, "scandir", scandir)
    report = preflight(tmp_path, TXT)
    assert report.ok and report.files_used == 1
    assert [(s.path, s.reason, s.detail) for s in report.skipped] == [
        ("locked/", "unreadable", "folder not read: Permission denied")
    ]
    assert report.warnings[0].startswith("1 folder(s) could not be read")
    assert report.summary().splitlines()[1].startswith("warning: 1 folder(s) could not be read")
    with pytest.raises(files.DataError, match="cannot list folder"):
        monkeypatch.setattr(
            files.os, "scandir", lambda p: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
        )
        scan(tmp_path)
