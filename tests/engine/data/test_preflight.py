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
    assert report.preview_tokens.shape == (4, 48) and report.preview_tokens.dtype == torch.int64
    assert int(report.preview_tokens.max()) <= 15
    assert report.stats["original width"].startswith("min 12")
    text = report.summary()
    assert "too large" in text and "ready to train" in text
    json.dumps(report.to_dict())


def test_text_preview_is_decoded(tmp_path) -> None:
    (tmp_path / "a.txt").write_bytes(b"hello world, partial masking")
    report = preflight(tmp_path, TXT)
    assert report.ok and report.preview_text[0].startswith("hello world")
    assert report.stats["total bytes"] == 28


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
