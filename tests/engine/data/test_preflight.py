"""The pre-flight report: found, used, skipped with reasons, statistics, previews, problems."""

from __future__ import annotations

import json
import os

import pytest
import torch

from engine.config import ModelConfig
from engine.data import DataError, DataOptions, load_data, preflight
from tests.engine.data._files import image_folder, write_bomb_png, write_image

IMG = ModelConfig(modality="image", num_classes=16, height=4, width=4, channels=3, d_model=16, n_heads=2)
TXT = ModelConfig(modality="text", num_classes=256, seq_len=16, d_model=16, n_heads=2)


def test_mixed_folder_reports_every_skip_with_its_reason(tmp_path) -> None:
    image_folder(tmp_path, n=5)
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "garbage.jpg").write_bytes(b"this is text")
    full = write_image(tmp_path / "big.png", (64, 64)).read_bytes()
    (tmp_path / "cut.png").write_bytes(full[: len(full) // 2])
    write_bomb_png(tmp_path / "bomb.png")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".hidden.png").write_bytes(b"")
    os.symlink(tmp_path / "gone.png", tmp_path / "vanished.png")  # listed, then gone when read
    report = preflight(tmp_path, IMG, DataOptions(val_fraction=0.2))
    assert report.ok, report.problem
    assert report.files_found == 12 and report.files_used == 6 and report.hidden_ignored == 1
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons == {
        "zero.png": "zero bytes",
        "garbage.jpg": "not an image",
        "cut.png": "truncated",
        "bomb.png": "too large",
        "notes.txt": "not an image",
        "vanished.png": "vanished",
    }
    assert report.items == 6 and report.train_items + report.val_items == 6 and report.val_items >= 1
    assert report.preview_tokens.shape == (report.train_items, 48)  # all of them: fewer than 16
    assert report.preview_tokens.dtype == torch.int64
    assert int(report.preview_tokens.max()) <= 15
    assert report.stats["original width"] == "12 to 64 (median 12) pixels"
    text = report.summary()
    assert "too large" in text and "ready to train" in text
    json.dumps(report.to_dict())


def test_text_preview_is_decoded(tmp_path) -> None:
    (tmp_path / "a.txt").write_bytes(b"hello world, partial masking")
    report = preflight(tmp_path, TXT)
    assert report.ok and report.preview_text[0].startswith("hello world")
    assert report.stats["total size"] == "28 bytes"


def test_empty_folder_and_no_usable_file(tmp_path) -> None:
    report = preflight(tmp_path, IMG)
    assert not report.ok and "holds no files" in report.problem
    with pytest.raises(DataError, match="holds no files"):
        load_data(tmp_path, IMG)
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.png").write_bytes(b"not a png")
    report = preflight(tmp_path, IMG)
    assert not report.ok
    assert "none of the 2 file(s) can be used" in report.problem and "zero bytes" in report.problem
    assert "cannot train" in report.summary()


def test_missing_path_and_wrong_modality(tmp_path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        preflight(tmp_path / "nope", IMG)
    (tmp_path / "a.txt").write_text("words")
    report = preflight(tmp_path, IMG)
    assert not report.ok and "text file(s)" in report.problem and "image model" in report.problem
    image_folder(tmp_path / "imgs", n=2)
    report = preflight(tmp_path / "imgs", TXT)
    assert not report.ok and "text model" in report.problem


def test_fingerprint_follows_content_and_preprocessing(tmp_path) -> None:
    image_folder(tmp_path, n=4)
    a = load_data(tmp_path, IMG).fingerprint
    assert load_data(tmp_path, IMG).fingerprint == a
    assert load_data(tmp_path, IMG, DataOptions(fit="pad")).fingerprint != a
    write_image(tmp_path / "img0.png", (12, 8), seed=99)
    assert load_data(tmp_path, IMG).fingerprint != a


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_is_skipped_not_read(tmp_path) -> None:
    image_folder(tmp_path, n=2)
    os.mkfifo(tmp_path / "pipe.png")  # reading it would block forever
    report = preflight(tmp_path, IMG)
    assert report.ok and report.files_used == 2
    assert [(s.path, s.reason) for s in report.skipped] == [("pipe.png", "unreadable")]


def _icon_folder(root, n: int = 20, solid: int = 0) -> None:
    """``n`` 8x8 RGBA icons: black glyphs on transparency (as Adwaita's symbolic icons); ``solid`` opaque."""
    import numpy as np
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = np.zeros((8, 8, 4), np.uint8)
        if i < solid:
            arr[...] = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
            arr[..., 3] = 255
        else:
            arr[2:6, 1 + i % 3 : 5 + i % 3, 3] = 255  # a small black square glyph
        Image.fromarray(arr, "RGBA").save(root / f"icon{i:02d}.png")


def test_flat_items_warn_on_black_and_not_on_white(tmp_path) -> None:
    _icon_folder(tmp_path, n=20, solid=2)
    black = preflight(tmp_path, IMG, DataOptions(background="black"))
    assert black.ok and black.flat_items == 18 and len(black.flat_sources) == 18
    assert black.warnings and black.warnings[0].startswith("18 of 20 items (90%) are one flat colour")
    assert "--drop-flat" in black.warnings[0] and "--background" in black.warnings[0]
    lines = black.summary().splitlines()
    assert lines[1].startswith("warning: 18 of 20 items") and "icon02.png" in black.summary()
    white = preflight(tmp_path, IMG)  # the default background
    assert white.ok and white.flat_items == 0 and not white.warnings
    assert white.options["background"] == "white"
    dropped = preflight(tmp_path, IMG, DataOptions(background="black", drop_flat=True, val_fraction=0.0))
    assert dropped.ok and dropped.items == 2 and dropped.files_used == 2 and dropped.flat_dropped == 18
    assert dropped.skipped_by_reason == {"flat": 18} and not dropped.warnings
    assert dropped.data.sources == ("icon00.png", "icon01.png")


def test_a_folder_that_is_all_blank_after_preprocessing_is_refused(tmp_path) -> None:
    _icon_folder(tmp_path / "icons", n=5)
    report = preflight(tmp_path / "icons", IMG, DataOptions(background="black"))
    assert not report.ok and "every item (5) is one flat colour after preprocessing" in report.problem
    assert "another --background" in report.problem
    with pytest.raises(DataError, match="every item"):
        load_data(tmp_path / "icons", IMG, DataOptions(background="black"))
    (tmp_path / "text").mkdir()
    for i in range(3):
        (tmp_path / "text" / f"blank{i}").write_text(" \n\n  \t\n" * (i + 1))
    report = preflight(tmp_path / "text", TXT)
    assert not report.ok and "is blank (whitespace or one repeated byte)" in report.problem


def test_the_report_reads_as_sentences_with_sixteen_previews(tmp_path) -> None:
    image_folder(tmp_path / "imgs", n=40, mode="RGBA")
    report = preflight(tmp_path / "imgs", IMG, DataOptions(val_fraction=0.1))
    assert report.preview_tokens.shape[0] == 16 and len(report.preview_sources) == 16
    text = report.summary()
    assert "{" not in text and "'" not in text  # no Python reprs
    assert "colour modes     40 RGBA (with transparency)" in text
    assert "transparency composited onto white" in text
    d = report.to_dict()
    assert json.loads(json.dumps(d))["stats_table"][0] == ["original width", "12 pixels"]
    assert d["warnings"] == list(report.warnings) and d["preview_title"].startswith("16 preview items")
    assert all(isinstance(v, str) for v in report.stats.values())


def test_text_report_escapes_control_characters_from_files(tmp_path) -> None:
    (tmp_path / "evil\x1b]0;owned\x07.txt").write_bytes(b"hello \x1b[2J\x1b[31mred\x1b[0m world " * 3)
    report = preflight(tmp_path, TXT)
    text = report.summary()
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J" in text and "evil\\x1b]0;owned\\x07.txt" in text
    assert "every byte is one token" in text


def test_a_file_that_vanishes_while_loading_is_reported(tmp_path, monkeypatch) -> None:
    import engine.data.collect as pf

    image_folder(tmp_path, n=4)
    real = pf.read_file

    def read_and_lose(full, rel, *a):
        if rel == "img1.png":
            full.unlink()  # the file really disappears between the listing and the read
        return real(full, rel, *a)

    monkeypatch.setattr(pf, "read_file", read_and_lose)
    report = preflight(tmp_path, IMG)
    assert report.ok and report.files_used == 3
    assert [(s.path, s.reason) for s in report.skipped] == [("img1.png", "vanished")]
