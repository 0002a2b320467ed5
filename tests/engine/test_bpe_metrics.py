"""Honest metrics for tokenized text (#13): the valid bound per token and per UTF-8 byte.

Bits per byte = the bound summed over the evaluated items / (ln 2 x the bytes those items decode
to), so a byte model and a BPE model scored on the same text are compared on one scale. The
tests recompute it from the decoded items and the per-token number, and check every place it is
reported: the evaluation result, the trainer's lines, the model card, ``prime eval``, ``prime
info`` and ``prime bench quality``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import ModelConfig, PrimeModel, learn_bpe, preflight, save_model
from engine.bench import quality as bench_quality
from engine.cli import main
from engine.data import DataOptions
from engine.data.dataset import array_dataset
from engine.files.modelfile import read_model_info
from engine.tokenizer import BpeTokenizer
from engine.training.config import TrainConfig
from engine.training.evaluate import evaluate
from engine.training.loop import train

from ._tiny import tiny_image_model, tiny_text_model

PSALM = (
    "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: "
    "he leadeth me beside the still waters. He restoreth my soul: he leadeth me in the paths of "
    "righteousness for his name's sake.\n"
)
MEEK = "Blessed are the meek: for they shall inherit the earth.\n"


@pytest.fixture(scope="module")
def vocab() -> BpeTokenizer:
    return learn_bpe([(PSALM * 20 + MEEK * 20).encode()], 400).tokenizer


def bpe_model(vocab: BpeTokenizer, seq_len: int = 16, seed: int = 0) -> PrimeModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(modality="text", num_classes=vocab.vocab_size, seq_len=seq_len, tokenizer="bpe",
                      vocabulary=vocab, d_model=16, n_layers=1, n_heads=2, ell=2)  # fmt: skip
    return PrimeModel(cfg)


def books(root: Path) -> Path:
    root.mkdir()
    (root / "psalm.txt").write_text(PSALM * 6)
    (root / "meek.txt").write_text(MEEK * 8 + "Ελληνικά\n")
    return root


def test_a_bpe_models_bits_per_byte_divide_the_summed_bound_by_the_decoded_bytes(
    tmp_path: Path, vocab: BpeTokenizer
) -> None:
    model = bpe_model(vocab)
    data = preflight(books(tmp_path / "books"), model.config, DataOptions(val_fraction=0.5)).require_usable()
    result = evaluate(model, data, split="all", passes=2)
    # the bytes every item decodes to, padding included, counted by decoding (not by the evaluator)
    decoded = sum(len(vocab.decode(row.tolist())) for row in data.tokens.astype(np.int64))
    tokens = data.tokens.size
    assert decoded > tokens  # BPE entries stand for more than one byte on average
    summed_nats = result.nats_per_token * tokens  # the mean per token times the tokens scored
    assert result.bits_per_byte == pytest.approx(summed_nats / (math.log(2) * decoded), rel=1e-9)
    assert result.bytes_per_token == pytest.approx(decoded / tokens)
    assert result.bits_per_byte < result.bits_per_token
    assert 0 < result.stderr_bits_per_byte < result.bits_per_byte
    assert result.perplexity == pytest.approx(math.exp(result.nats_per_token))
    line = result.line()
    assert "bits/token" in line and "bits/byte" in line and "bits/dim" not in line
    assert f"{result.bits_per_byte:.4f}" in line and "perplexity per token <=" in line
    out = result.to_dict()
    assert out["bits_per_byte"] == result.bits_per_byte and out["tokenizer"] == "bpe"
    assert "upper bound" in out["perplexity_is"] and "surrogate" not in json.dumps(out)
    assert "UTF-8 bytes" in out["how"]


def test_bytes_models_have_bits_per_byte_equal_to_bits_per_token_and_images_keep_bits_per_dim() -> None:
    rng = np.random.default_rng(0)
    text = tiny_text_model(seq_len=16)
    data = array_dataset(rng.integers(32, 127, size=(12, 16)), 256, modality="text", val_fraction=0.0)
    result = evaluate(text, data, split="all")
    assert result.bytes_per_token == 1.0 and result.tokenizer == "bytes"
    assert result.bits_per_byte == pytest.approx(result.bits_per_token, rel=1e-12)
    assert "bits/token (= bits/byte" in result.line()
    image = tiny_image_model(num_classes=16)
    pixels = array_dataset(rng.integers(0, 16, size=(8, 16)), 16, val_fraction=0.0)
    shown = evaluate(image, pixels, split="all")
    assert shown.bits_per_byte is None and "bits_per_byte" not in shown.to_dict()
    assert "bits/dim" in shown.line() and "bits/byte" not in shown.line()


def test_tokens_of_another_vocabulary_are_refused(vocab: BpeTokenizer) -> None:
    other = learn_bpe([("Zerubbabel the son of Shealtiel " * 40).encode()], 300).tokenizer
    data = bench_quality.kjv_held_out_tokens(other, 16)  # data that records the vocabulary of its ids
    assert data.vocabulary is other and int(data.tokens.max()) < vocab.vocab_size  # the ids would fit
    with pytest.raises(ValueError, match="tokenize the data with the model's own vocabulary"):
        evaluate(bpe_model(vocab), data, split="all", max_items=4)
    assert evaluate(bpe_model(other), data, split="all", max_items=4).tokenizer == "bpe"


def test_training_reports_bits_per_byte_in_its_lines_and_the_model_card(
    tmp_path: Path, vocab: BpeTokenizer, capsys: pytest.CaptureFixture[str]
) -> None:
    root = books(tmp_path / "books")
    model = bpe_model(vocab)
    tc = TrainConfig(steps=3, batch_size=4, eval_every=0, preview_every=0, checkpoint_every=0, eval_batches=1)
    summary = train(model.config, tc, root, tmp_path / "run")
    card = read_model_info(summary.model_path).card
    bound = card["metrics"]["valid_bound"]
    assert bound["modality"] == "text" and bound["tokenizer"] == "bpe"
    assert bound["bits_per_byte"] == pytest.approx(summary.final_eval.bits_per_byte)
    assert bound["bits_per_byte"] < bound["bits_per_token"]
    assert "bits/byte" in summary.final_eval.line()
    # prime info shows both units, and prime eval prints and returns bits per byte
    assert main(["info", summary.model_path]) == 0
    info = capsys.readouterr().out
    assert f"{bound['bits_per_byte']:.4g}" in info and "bits/token" in info and "bits/byte" in info
    assert "perplexity per token <=" in info
    assert main(["eval", "--model", summary.model_path, "--data", str(root), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["tokenizer"] == "bpe" and payload["bits_per_byte"] < payload["bits_per_token"]
    assert main(["eval", "--model", summary.model_path, "--data", str(root)]) == 0
    text = capsys.readouterr().out
    assert f"{payload['bits_per_byte']:.4f}" in text and "bits/byte" in text and "bits/dim" not in text
    assert "per token (an upper bound" in text


def test_quality_bench_decodes_a_bpe_model_and_the_held_out_books_with_its_vocabulary(
    tmp_path: Path, vocab: BpeTokenizer
) -> None:
    path = save_model(tmp_path / "tiny-bpe.safetensors", bpe_model(vocab, seq_len=32))
    result = bench_quality.run(
        {"models": [str(path)], "nfe": [4, 8], "num": 6, "eval_passes": 1, "strategies": ["ancestral"]}
    )
    (ref,) = result["text_reference"]
    assert ref["tokenizer"] == "bpe" and ref["seq_len"] == 32 and ref["passages"] == 6
    # the real held-out verses decoded with the model's vocabulary are real words (as bytes they are not)
    assert ref["in_vocabulary_share"] > 0.8
    (m,) = result["models"]
    assert m["tokenizer"] == "bpe" and m["vocab_size"] == vocab.vocab_size and m["bytes_per_token"] > 1
    assert 0 < m["valid_bound_bits_per_byte"] < m["valid_bound_bits_per_token"]
    rows = result["rows"]
    assert [r["target_nfe"] for r in rows] == [4, 8]
    for row in rows:
        assert row["valid_bound_bits_per_byte"] == m["valid_bound_bits_per_byte"]
        assert row["passages"] == 6 and row["in_vocabulary_share"] < ref["in_vocabulary_share"]
        assert row["mean_nfe"] <= row["target_nfe"] + 0.5 and row["seconds"] > 0
        assert "mean_idle_steps" in row and "well_formed_line_share" in row
    table = bench_quality.format_table(result)
    assert "real held-out 32-token (bpe" in table and "bits/byte" in table
    assert f"{m['valid_bound_bits_per_byte']:.4f}" in table
