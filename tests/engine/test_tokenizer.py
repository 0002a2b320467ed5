"""Byte-level BPE vocabularies: learning, lossless round trips, folders and runs that use them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from engine import ModelConfig, load_data, preflight
from engine.cli import main
from engine.data import DataOptions, learn_vocabulary
from engine.tokenizer import BYTES, BpeTokenizer, TokenizerError, byte_alphabet, learn_bpe
from engine.training.checkpoint import CheckpointError
from engine.training.config import TrainConfig
from engine.training.loop import train

PSALM = (
    "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: "
    "he leadeth me beside the still waters. He restoreth my soul: he leadeth me in the paths of "
    "righteousness for his name's sake.\n"
)


@pytest.fixture(scope="module")
def vocab() -> BpeTokenizer:
    return learn_bpe([PSALM.encode() * 20], 400).tokenizer


def test_learning_is_deterministic_and_every_byte_is_in_the_vocabulary(vocab: BpeTokenizer) -> None:
    again = learn_bpe([PSALM.encode() * 20], 400).tokenizer
    assert again.to_json() == vocab.to_json() and again.digest == vocab.digest
    singles = {vocab.token_bytes(i) for i in range(vocab.vocab_size) if len(vocab.token_bytes(i)) == 1}
    assert singles == {bytes([b]) for b in range(256)}
    assert len(set(byte_alphabet())) == 256


@pytest.mark.parametrize("seed", range(5))
def test_any_bytes_round_trip(vocab: BpeTokenizer, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pieces = [
        rng.integers(0, 256, size=int(rng.integers(0, 300)), dtype=np.uint8).tobytes(),
        PSALM.encode()[: int(rng.integers(1, 200))],
        "Ελληνικά 日本語 \u200b\U0001f600".encode(),
        b"\xc3",  # a truncated two-byte sequence
        b"\xed\xa0\x80",  # an encoded surrogate (invalid UTF-8)
    ]
    data = b"".join(pieces[i] for i in rng.permutation(len(pieces)))
    ids = vocab.encode(data)
    assert ids.dtype == np.int64 and ids.min(initial=0) >= 0 and ids.max(initial=0) < vocab.vocab_size
    assert vocab.decode(ids) == data
    docs = [data, b"", PSALM.encode()]
    assert [vocab.decode(x) for x in vocab.encode_batch(docs)] == docs


def test_common_words_are_single_tokens(vocab: BpeTokenizer) -> None:
    ids = vocab.encode(" shepherd")
    assert len(ids) == 1 and vocab.token_bytes(int(ids[0])) == b" shepherd"
    assert len(vocab.encode(PSALM)) < len(PSALM.encode()) / 3


def test_bad_vocabularies_are_refused_by_name(vocab: BpeTokenizer) -> None:
    with pytest.raises(TokenizerError, match="corrupt"):
        BpeTokenizer(vocab.to_json()[:-10])
    with pytest.raises(TokenizerError, match="C = 500"):
        BpeTokenizer(vocab.to_json(), expected_size=500)
    with pytest.raises(TokenizerError, match="missing or empty"):
        BpeTokenizer("")
    with pytest.raises(TokenizerError, match="vocabulary size must be in"):
        learn_bpe([b"abc"], 100)


def test_a_bpe_config_needs_its_vocabulary_to_build_a_model(vocab: BpeTokenizer) -> None:
    from engine import PrimeModel

    cfg = ModelConfig(modality="text", num_classes=vocab.vocab_size, seq_len=8, tokenizer="bpe", d_model=24,
                      n_layers=1, n_heads=2, ell=3)  # fmt: skip
    with pytest.raises(ValueError, match="carries no vocabulary"):
        PrimeModel(cfg)
    with pytest.raises(ValueError, match="entries but num_classes"):
        cfg.replace(num_classes=vocab.vocab_size + 1, vocabulary=vocab)
    model = PrimeModel(cfg.replace(vocabulary=vocab))
    assert model.tokenizer is vocab and model.codec.base**3 >= vocab.vocab_size
    assert "vocabulary" not in cfg.to_dict()
    assert ModelConfig(modality="text", num_classes=256, seq_len=8).replace().tokenizer == "bytes"
    assert PrimeModel(ModelConfig(modality="text", num_classes=256, seq_len=8, d_model=16, n_layers=1,
                                  n_heads=2)).tokenizer is BYTES  # fmt: skip


def _books(root: Path) -> Path:
    root.mkdir()
    (root / "psalm.txt").write_text(PSALM * 6)
    (root / "notes").write_text("Blessed are the meek: for they shall inherit the earth.\n" * 8)
    (root / "heldout.md").write_text("Zerubbabel Zerubbabel Zerubbabel Zerubbabel\n" * 30)
    return root


def test_a_folder_vocabulary_is_learned_from_the_training_split_only(tmp_path: Path) -> None:
    root = _books(tmp_path / "books")
    # a seed whose split holds heldout.md out and keeps the other two for training
    opt = next(
        o
        for o in (DataOptions(val_fraction=0.34, seed=s) for s in range(200))
        if _val_sources(root, o) == {"heldout.md"}
    )
    learned = learn_vocabulary(root, 600, opt).tokenizer
    entries = {learned.token_bytes(i) for i in range(learned.vocab_size)}
    assert b" shepherd" in entries or b"shepherd" in entries
    assert not any(b"Zerub" in e for e in entries), "held-out text shaped the vocabulary"
    cfg = ModelConfig(modality="text", num_classes=learned.vocab_size, seq_len=32, tokenizer="bpe",
                      vocabulary=learned, d_model=16, n_layers=1, n_heads=2, ell=2)  # fmt: skip
    for mode in ("pad", "pack"):
        o = DataOptions(val_fraction=opt.val_fraction, seed=opt.seed, text_mode=mode)
        report = preflight(root, cfg, o)
        assert report.ok, report.problem
        data = report.data
        assert data.tokens.dtype == np.uint16 and int(data.tokens.max()) < learned.vocab_size
        assert "bytes per token" in report.stats["vocabulary"]
        assert "|" in report.preview_text[0]
        text = learned.decode(data.tokens[data.train_index].reshape(-1).tolist())
        assert b"The LORD is my shepherd" in text and b"Blessed are the meek" in text
    assert "heldout.md" in {data.sources[int(g)] for g in data.groups[data.val_index]}


def _val_sources(root: Path, opt: DataOptions) -> set[str]:
    data = load_data(root, ModelConfig(modality="text", num_classes=256, seq_len=32), opt)
    return {data.sources[int(g)] for g in data.groups[data.val_index]}


def test_training_and_resuming_a_bpe_model_keeps_its_vocabulary(tmp_path: Path) -> None:
    from engine import load_model

    root = _books(tmp_path / "books")
    learned = learn_vocabulary(root, 500).tokenizer
    cfg = ModelConfig(modality="text", num_classes=learned.vocab_size, seq_len=16, tokenizer="bpe",
                      vocabulary=learned, d_model=24, n_layers=1, n_heads=2, ell=3)  # fmt: skip
    tc = TrainConfig(steps=4, batch_size=4, eval_every=0, preview_every=0, checkpoint_every=2, eval_batches=1)
    out = tmp_path / "run"
    train(cfg, tc, root, out)
    model, info = load_model(out.with_suffix(".safetensors"))
    assert (
        model.tokenizer.digest == learned.digest and info.config.vocabulary.vocab_size == learned.vocab_size
    )
    assert model.tokenizer.trained_bytes_per_token == pytest.approx(learned.trained_bytes_per_token, rel=1e-3)
    # a checkpoint of this run refuses to resume with another vocabulary
    rng = np.random.default_rng(0)
    words = [bytes(rng.integers(97, 123, size=6, dtype=np.uint8)) for _ in range(3000)]
    other = learn_bpe([b" ".join(words * 2)], learned.vocab_size).tokenizer
    assert other.vocab_size == learned.vocab_size and other.digest != learned.digest
    tc2 = TrainConfig(
        steps=6, batch_size=4, eval_every=0, preview_every=0, checkpoint_every=2, eval_batches=1
    )
    mid = tmp_path / "mid"
    train(cfg, TrainConfig(**{**tc2.to_dict(), "steps": 2}), root, mid)
    os.replace(mid.with_suffix(".safetensors"), tmp_path / "mid-model.safetensors")
    with pytest.raises(CheckpointError, match="another tokenizer"):
        train(cfg.replace(vocabulary=other), tc2, root, mid, resume=True)
    summary = train(cfg, tc2, root, mid, resume=True)
    assert summary.steps == 6


def test_prime_train_tokenizer_bpe_on_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _books(tmp_path / "books")
    code = main(["train", "--data", str(root), "--modality", "text", "--tokenizer", "bpe", "--vocab", "300",
                 "--seq-len", "16", "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--dry-run",
                 "--out", str(tmp_path / "m")])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "300 entries (byte-level BPE)" in out and "|" in out


def test_shuffle_ids_saves_a_seeded_permutation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine import read_model_info

    root = _books(tmp_path / "books")
    base = ["train", "--data", str(root), "--modality", "text", "--tokenizer", "bpe", "--vocab", "300",
            "--seq-len", "16", "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--steps", "1",
            "--eval-every", "0", "--preview-every", "0"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "a"), "--shuffle-ids", "7"]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--shuffle-ids", "7"]) == 0
    a = read_model_info(tmp_path / "a.safetensors").config
    b = read_model_info(tmp_path / "b.safetensors").config
    assert a.permutation is not None and a.permutation == b.permutation
    assert sorted(a.permutation) == list(range(a.num_classes)) and a.permutation != tuple(
        range(a.num_classes)
    )
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "c"), "--shuffle-ids", "7", "--ell", "1"]) == 2
    assert "nothing to shuffle" in capsys.readouterr().err
