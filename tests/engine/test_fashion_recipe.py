"""The Fashion-MNIST recipes, the IDX label reader and the Fashion-MNIST judge, on a tiny IDX folder."""

from __future__ import annotations

import dataclasses
import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.bench.digits import Setting
from engine.bench.fashion import (
    CLASSES,
    check_model,
    fashion_labels,
    judge_model,
    main,
    make_judge,
    real_reference,
)
from engine.cli import main as prime
from engine.data import DataError
from engine.data.arrays import read_idx_labels
from engine.files.modelfile import load_model
from engine.training.loop import iter_train
from engine.training.recipes import FASHION_ENV, RECIPES, fashion_data, get_recipe
from tests.engine._tiny import tiny_image_model

N_TRAIN, N_TEST = 60, 20


def idx(arr: np.ndarray) -> bytes:
    """An IDX file of uint8 ``arr`` (images N x H x W, or labels N)."""
    return bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def garments(labels: np.ndarray, seed: int) -> np.ndarray:
    """28x28 images whose class shows: class k lights rows 2k+4..2k+6, on dim noise (a learnable toy)."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 40, (len(labels), 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        out[i, 2 * k + 4 : 2 * k + 7, 3:25] = rng.integers(200, 256, (3, 22), dtype=np.uint8)
    return out


def write_folder(folder: Path, n_train: int = N_TRAIN, n_test: int = N_TEST, gz: bool = True) -> dict:
    """A Fashion-MNIST-shaped folder: train and t10k images with their labels; returns the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        labels = (np.arange(n) % len(CLASSES)).astype(np.uint8)
        images = garments(labels, seed)
        arrays[split] = (images, labels)
        suffix = ".gz" if gz else ""
        pack = gzip.compress if gz else bytes
        (folder / f"{split}-images-idx3-ubyte{suffix}").write_bytes(pack(idx(images)))
        (folder / f"{split}-labels-idx1-ubyte{suffix}").write_bytes(pack(idx(labels)))
    return arrays


@pytest.fixture
def fashion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    folder = tmp_path / "fashion-mnist"
    arrays = write_folder(folder)
    monkeypatch.setenv(FASHION_ENV, str(folder))
    return folder, arrays


# --------------------------------------------------------------------------- labels


def test_label_reader_reads_plain_and_gzipped_files(tmp_path: Path) -> None:
    labels = np.array([9, 0, 3, 3, 7], dtype=np.uint8)
    (tmp_path / "plain").write_bytes(idx(labels))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(idx(labels)))
    for name in ("plain", "packed.gz"):
        got = read_idx_labels(tmp_path / name, count=5)
        assert got.dtype == np.uint8 and got.tolist() == labels.tolist()
    with pytest.raises(DataError, match="5 labels for 6 images"):
        read_idx_labels(tmp_path / "packed.gz", count=6)


def test_label_reader_refuses_bad_files(tmp_path: Path) -> None:
    good = idx(np.arange(10, dtype=np.uint8))
    cases = {
        "cut": (good[:-1], "truncated"),
        "long": (good + b"x", "corrupt"),
        "images": (idx(np.zeros((2, 3, 3), np.uint8)), "magic 0x00000801"),
        "short-head": (good[:6], "truncated"),
        "cut.gz": (gzip.compress(good)[:-12], "truncated|corrupt"),
        "long.gz": (gzip.compress(good + b"xy"), "corrupt"),
        "cut-data.gz": (gzip.compress(good[:-3]), "truncated"),
        "bad.gz": (b"\x1f\x8b" + b"\xff" * 30, "corrupt"),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=reason):
            read_idx_labels(tmp_path / name)
    with pytest.raises(DataError, match="vanished|disappeared|not exist"):
        read_idx_labels(tmp_path / "missing")


def test_label_reader_checks_the_header_before_reading(tmp_path: Path) -> None:
    # a header claiming 4 billion labels in a 20-byte file: refused from the size, nothing allocated
    (tmp_path / "huge").write_bytes(b"\0\0\x08\x01" + struct.pack(">I", 0xFFFFFFF0) + b"\0" * 12)
    with pytest.raises(DataError, match="too large"):
        read_idx_labels(tmp_path / "huge")
    (tmp_path / "big").write_bytes(b"\0\0\x08\x01" + struct.pack(">I", 1_000_000) + b"\0" * 12)
    with pytest.raises(DataError, match="truncated: holds 12 labels, the header announces 1,000,000"):
        read_idx_labels(tmp_path / "big")


# --------------------------------------------------------------------------- data and recipes


def test_fashion_data_splits_train_and_test_files(fashion: tuple[Path, dict]) -> None:
    folder, arrays = fashion
    data = fashion_data()
    assert data.tokens.shape == (N_TRAIN + N_TEST, 784) and data.num_classes == 256
    assert (len(data.train_index), len(data.val_index)) == (N_TRAIN, N_TEST)
    train_files = {data.sources[data.groups[i]].split("[")[0] for i in data.train_index}
    test_files = {data.sources[data.groups[i]].split("[")[0] for i in data.val_index}
    assert train_files == {"train-images-idx3-ubyte.gz"} and test_files == {"t10k-images-idx3-ubyte.gz"}
    # the tokens are the pixels (256 levels: no quantisation), item i of each file in order
    first_test = data.tokens[data.val_index[0]].reshape(28, 28)
    assert np.array_equal(first_test, arrays["t10k"][0][0])
    assert np.array_equal(data.tokens[data.train_index[-1]].reshape(28, 28), arrays["train"][0][-1])
    labels = fashion_labels(data, folder)
    assert labels[data.train_index].tolist() == arrays["train"][1].tolist()
    assert labels[data.val_index].tolist() == arrays["t10k"][1].tolist()
    assert fashion_data(folder).fingerprint == data.fingerprint


def test_fashion_data_reads_plain_idx_and_refuses_a_half_folder(tmp_path: Path) -> None:
    write_folder(tmp_path / "plain", 12, 4, gz=False)
    data = fashion_data(tmp_path / "plain")
    assert (len(data.train_index), len(data.val_index)) == (12, 4)
    write_folder(tmp_path / "half", 12, 4)
    (tmp_path / "half" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="no t10k-images"):
        fashion_data(tmp_path / "half")


def test_missing_folder_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FASHION_ENV, str(tmp_path / "nowhere"))
    for call in (fashion_data, RECIPES["fashion-prime"].prepare):
        with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as info:
            call()
        assert FASHION_ENV in str(info.value) and "nowhere" in str(info.value)


def test_fashion_recipes_are_the_paper_pixel_setting() -> None:
    prime, mdm = get_recipe("fashion-prime"), get_recipe("fashion-mdm")
    for recipe in (prime, mdm):
        cfg = recipe.model
        assert (cfg.modality, cfg.height, cfg.width, cfg.channels, cfg.num_classes) == (
            "image",
            28,
            28,
            1,
            256,
        )
        assert (cfg.d_model, cfg.n_layers, cfg.n_heads) == (128, 4, 4)
        assert recipe.train.batch_size == 16 and recipe.train.eval_every == recipe.train.preview_every == 500
        assert "Fashion-MNIST" in recipe.source and "MIT" in recipe.source
    assert (prime.model.ell, prime.model.base) == (2, 16) and (mdm.model.ell, mdm.model.base) == (1, 256)
    assert prime.model.replace(ell=1) == mdm.model and prime.train == mdm.train
    # every other setting is the digits recipes' (the shared base), but for the weight decay the
    # digits measured for themselves (README, "Digits quality"): Fashion-MNIST has none
    base = get_recipe("digits-prime").train
    assert base.weight_decay == 0.1 and prime.train.weight_decay == 0.0
    keep = {"steps", "batch_size", "eval_every", "preview_every", "weight_decay"}
    differ = {
        f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(prime.train, f.name)
    }
    assert differ <= keep


def test_recipe_dry_run_and_a_short_training(
    fashion: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "f"
    assert prime(["train", "--recipe", "fashion-prime", "--out", str(out), "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and (report["items"], report["train_items"], report["val_items"]) == (80, 60, 20)
    assert not out.with_suffix(".safetensors").exists()
    # the CLI trains a recipe at its own model size; the same recipe (data, settings, card) at a tiny size:
    recipe = get_recipe("fashion-prime")
    mcfg, data = recipe.prepare()
    tiny = mcfg.replace(d_model=16, n_layers=1, n_heads=2)
    cfg = dataclasses.replace(recipe.train, steps=2, batch_size=4, eval_batches=1, checkpoint_every=0)
    kinds = [ev.kind for ev in iter_train(tiny, cfg, data, out, card=recipe.card())]
    assert kinds.count("step") == 2
    model, info = load_model(str(out) + ".safetensors")
    assert info.card["recipe"] == "fashion-prime" and info.card["data"]["val_items"] == N_TEST
    assert (model.config.ell, model.config.base, model.config.seq_length) == (2, 16, 784)


# --------------------------------------------------------------------------- the judge


def test_judge_reads_real_images_and_doubts_noise(fashion: tuple[Path, dict]) -> None:
    torch.set_num_threads(1)
    judge, data = make_judge(epochs=60)
    assert judge.test_accuracy > 0.9  # the toy classes are easy: the judge has learnt them
    ref = real_reference(judge, data, 16, [0])
    assert ref["samples"] == 16 and len(ref["rows"]) == 1
    model = tiny_image_model(num_classes=256, ell=2, size=28)
    result = judge_model(model, judge, data, [Setting(steps=8)], num=16, seeds=(0,))
    assert result["ell"] == 2 and len(result["rows"]) == 1
    row = result["rows"][0]
    assert row["samples"] == 16 and sum(row["class_counts"]) == 16
    assert len(row["class_shares"]) == len(CLASSES) and abs(sum(row["class_shares"]) - 1) < 1e-9
    assert 0 <= row["confident_share"] <= 1 and np.isfinite(row["frechet_distance"])
    assert row["meets_bar"] is False
    real = ref["rows"][0]
    assert real["confident_share"] > row["confident_share"]
    assert real["frechet_distance"] < row["frechet_distance"]
    with pytest.raises(ValueError, match="not a 28x28 grey 256-level"):
        check_model(tiny_image_model(num_classes=17, size=8), "digits")


def test_judge_command_refuses_a_wrong_model(
    fashion: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.files.modelfile import save_model

    path = tmp_path / "digits.safetensors"
    save_model(path, tiny_image_model(num_classes=17, size=8))
    assert main([str(path), "--samples", "16", "--epochs", "1"]) == 2
    assert "not a 28x28 grey 256-level" in capsys.readouterr().err
