"""The CLI on BPE text models (#13), and model files with a hostile vocabulary.

``prime generate`` encodes --prompt/--suffix and decodes samples with the model's own vocabulary;
``prime info`` names the tokenizer; fine-tuning on a folder keeps the parent's vocabulary and the
pre-flight report says how well it covers the new text; a file whose vocabulary is missing,
corrupt, of the wrong size or altered is refused by name, quickly.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from engine import ModelConfig, PrimeModel, save_model
from engine.cli import main
from engine.cli.conditions import text_condition_from_flags
from engine.data.vocabulary import fit_vocabulary
from engine.files.modelfile import ModelFileError, load_model, read_model_info, read_safetensors
from engine.tokenizer import BpeTokenizer, learn_bpe

PSALM = (
    "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: "
    "he leadeth me beside the still waters. He restoreth my soul: he leadeth me in the paths of "
    "righteousness for his name's sake.\n"
)
GREEK = "Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς τὸν θεόν, καὶ θεὸς ἦν ὁ λόγος.\n"
TINY = ["--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--seq-len", "16"]
FAST = ["--steps", "2", "--batch-size", "4", "--eval-every", "0", "--checkpoint-every", "0",
        "--preview-every", "0", "--eval-batches", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def vocab() -> BpeTokenizer:
    return fit_vocabulary([PSALM.encode() * 20], 400).tokenizer  # with its bytes per token


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, vocab: BpeTokenizer) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(modality="text", num_classes=vocab.vocab_size, seq_len=24, tokenizer="bpe",
                      vocabulary=vocab, d_model=16, n_layers=1, n_heads=2, ell=2)  # fmt: skip
    return save_model(tmp_path_factory.mktemp("bpe") / "tiny-bpe.safetensors", PrimeModel(cfg))


@pytest.fixture(scope="module")
def stored(model_file: Path) -> BpeTokenizer:
    return read_model_info(model_file).config.vocabulary


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- generate / info


def test_generate_encodes_the_prompt_and_decodes_samples_with_the_models_vocabulary(
    tmp_path: Path, model_file: Path, vocab: BpeTokenizer, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt, suffix = "The LORD is my shepherd", " sake.\n"
    out = tmp_path / "psalm.txt"
    code, stdout, _ = run(capsys, "generate", "--model", str(model_file), "--out", str(out), "--steps", "4",
                          "--num", "2", "--prompt", prompt, "--suffix", suffix, "--json")  # fmt: skip
    assert code == 0
    payload = json.loads(stdout)
    assert payload["tokenizer"] == "bpe" and len(payload["texts"]) == 2
    n_p, n_s = len(vocab.encode(prompt)), len(vocab.encode(suffix))
    assert n_p < len(prompt.encode())  # BPE: fewer tokens than bytes, so the prompt was not bytes
    for text in payload["texts"]:
        assert text.startswith(prompt) and text.endswith(suffix)  # decoded entries, not byte values
        ids = vocab.encode(text.encode())  # the sample, re-encoded, has its prompt as the first tokens
        assert vocab.decode(ids[:n_p]) == prompt.encode()
    body = out.read_text(encoding="utf-8")
    assert body.startswith("--- sample 1 of 2 (seed 0, --num 2) ---\n" + prompt)
    assert payload["texts"][1] in body
    # --length counts tokens: 24 = prompt + length + suffix tokens
    code, _, err = run(capsys, "generate", "--model", str(model_file), "--out", str(out), "--prompt", prompt,
                       "--suffix", suffix, "--length", str(24 - n_p - n_s + 1))  # fmt: skip
    assert code == 2 and f"prompt ({n_p} tokens)" in err and "holds 24 tokens" in err


@pytest.mark.parametrize(
    "raw",
    [
        b"He said \xff\xfe then \xc3",  # invalid UTF-8, as a shell may pass it
        "ἀρχῇ\u200b\u202e\U0001f600e\u0301".encode(),  # Greek, zero-width, bidi, emoji, combining
    ],
)
def test_odd_prompts_reach_the_model_byte_for_byte(
    model_file: Path, stored: BpeTokenizer, raw: bytes
) -> None:
    model, info = load_model(model_file)
    args = _flags(prompt=os.fsdecode(raw))  # how Python hands argv bytes over
    condition, shown = text_condition_from_flags(args, model, info)
    fixed = condition.fixed.all(-1)  # (L,) tokens the sampler keeps
    n = int(fixed.sum())
    assert bool(fixed[:n].all()) and n == len(stored.encode(raw))
    tokens = model.codec.decode(condition.digits)[:n]  # (n,) the prompt's ids
    assert stored.decode(tokens.tolist()) == raw and shown == 24


def test_a_prompt_with_a_lone_surrogate_is_refused_by_name(model_file: Path) -> None:
    model, info = load_model(model_file)
    with pytest.raises(ValueError, match=r"--prompt holds a lone surrogate \(U\+D800\)"):
        text_condition_from_flags(_flags(prompt="abc\ud800"), model, info)


def _flags(**given: object) -> object:
    import argparse

    return argparse.Namespace(**{"prompt": None, "suffix": None, "length": None, **given})


def test_info_names_the_tokenizer_its_size_and_bytes_per_token(
    model_file: Path, vocab: BpeTokenizer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "info", str(model_file))
    assert code == 0
    assert f"text (bpe, {vocab.vocab_size:,} entries) of 24 tokens" in out
    bpt = vocab.trained_bytes_per_token
    assert bpt > 1.5
    assert re.search(
        rf"tokenizer: +byte-level BPE, {vocab.vocab_size:,} entries \(checksum {vocab.digest}\), "
        rf"{bpt:.2f} bytes per token",
        out,
    )
    code, out, _ = run(capsys, "models")
    assert code == 0


# --------------------------------------------------------------------------- stored vocabulary


def test_a_stored_vocabulary_gives_the_same_ids(stored: BpeTokenizer, vocab: BpeTokenizer) -> None:
    assert stored is not vocab and stored.digest == vocab.digest
    rng = np.random.default_rng(0)
    texts = [PSALM.encode(), GREEK.encode(), rng.integers(0, 256, 500, dtype=np.uint8).tobytes(), b""]
    for text in texts:
        assert np.array_equal(stored.encode(text), vocab.encode(text))
    assert stored.trained_bytes_per_token == pytest.approx(vocab.trained_bytes_per_token, rel=1e-3)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=400) | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_any_bytes_round_trip_through_a_stored_vocabulary(stored: BpeTokenizer, data: bytes) -> None:
    ids = stored.encode(data)
    assert ids.min(initial=0) >= 0 and ids.max(initial=0) < stored.vocab_size
    assert stored.decode(ids) == data


# --------------------------------------------------------------------------- hostile files


def _edited(path: Path, out: Path, drop: tuple[str, ...] = (), **changes: str) -> Path:
    tensors, metadata = read_safetensors(path)
    for key in drop:
        metadata.pop(key, None)
    metadata.update(changes)
    save_file(tensors, str(out), metadata=metadata)
    return out


def _hostile_cases(model_file: Path, vocab: BpeTokenizer) -> dict[str, tuple[dict, str]]:
    other = learn_bpe([(GREEK * 30).encode()], 300).tokenizer
    assert other.vocab_size != vocab.vocab_size
    good = vocab.to_json()
    not_bpe = json.dumps({**json.loads(good), "model": {"type": "WordPiece", "vocab": {"a": 0}}})
    return {
        "missing": ({"drop": ("tokenizer",)}, "without its vocabulary"),
        "empty": ({"tokenizer": ""}, "missing or empty"),
        "truncated": ({"tokenizer": good[: len(good) // 2]}, "corrupt"),
        "deeply nested": ({"tokenizer": "[" * 200_000 + "]" * 200_000}, "corrupt|not a JSON object"),
        "not BPE": ({"tokenizer": not_bpe}, "not a BPE vocabulary"),
        "wrong size": (
            {"tokenizer": other.to_json(), "tokenizer_digest": other.digest},
            rf"{other.vocab_size:,} entries but the model has C = {vocab.vocab_size:,}",
        ),
        "altered": ({"tokenizer_digest": "0" * 16}, "does not match its checksum"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "empty", "truncated", "deeply nested", "not BPE", "wrong size", "altered"]
)
def test_a_hostile_vocabulary_is_refused_by_name_quickly(
    tmp_path: Path, model_file: Path, vocab: BpeTokenizer, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    change, message = _hostile_cases(model_file, vocab)[case]
    drop = change.pop("drop", ())
    bad = _edited(model_file, tmp_path / "bad.safetensors", drop=drop, **change)
    for read in (read_model_info, load_model):
        started = time.perf_counter()
        with pytest.raises(ModelFileError, match=message) as err:
            read(bad)
        assert time.perf_counter() - started < 5.0
        assert str(bad) in str(err.value)
    code, out, err_text = run(capsys, "info", str(bad))
    lines = err_text.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and re.search(message, lines[0])


# --------------------------------------------------------------------------- train / fine-tune


def test_vocab_larger_than_the_data_supports_is_capped_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "books"
    root.mkdir()
    (root / "psalm.txt").write_text(PSALM * 4)
    code, out, err = run(capsys, "train", "--data", str(root), "--out", str(tmp_path / "m"), "--modality",
                         "text", "--tokenizer", "bpe", "--vocab", "60000", *TINY, "--dry-run")  # fmt: skip
    assert code == 0
    note = re.search(
        r"note: the data supports ([\d,]+) vocabulary entries .*not the 60,000 asked for; using \1", err
    )
    assert note, err
    capped = int(note.group(1).replace(",", ""))
    assert 257 <= capped < 60000
    assert f"{note.group(1)} entries (byte-level BPE)" in out
    assert "BPE tokens" in out and "every byte is one token" not in out and "byte tokens" not in out


def test_fine_tuning_keeps_the_parents_vocabulary_and_says_how_well_it_covers_new_text(
    tmp_path: Path, model_file: Path, vocab: BpeTokenizer, capsys: pytest.CaptureFixture[str]
) -> None:
    greek, english = tmp_path / "greek", tmp_path / "english"
    greek.mkdir()
    english.mkdir()
    (greek / "john.txt").write_text(GREEK * 6, encoding="utf-8")
    (english / "psalm.txt").write_text(PSALM * 3)
    own = vocab.trained_bytes_per_token
    for folder, poor in ((greek, True), (english, False)):
        code, out, _ = run(capsys, "train", "--data", str(folder), "--from", str(model_file), "--out",
                           str(tmp_path / "child"), "--dry-run")  # fmt: skip
        assert code == 0
        line = next(x for x in out.splitlines() if x.strip().startswith("vocabulary"))
        here = float(re.search(r"([\d.]+) bytes per token on this data", line).group(1))
        assert f"{own:.2f} on the data it was learned from" in line
        assert ("covered poorly" in line) is poor
        assert (here < 0.75 * own) is poor
        assert "BPE tokens" in out and "byte tokens" not in out
    child = tmp_path / "child"
    code, _, _ = run(capsys, "train", "--data", str(greek), "--from", str(model_file), "--out", str(child),
                     *FAST)  # fmt: skip
    assert code == 0
    info = read_model_info(child.with_suffix(".safetensors"))
    assert info.config.vocabulary.digest == vocab.digest and info.config.num_classes == vocab.vocab_size
    assert read_safetensors(child.with_suffix(".safetensors"))[1]["tokenizer"] == vocab.to_json()
    bound = info.card["metrics"]["valid_bound"]
    assert bound["tokenizer"] == "bpe" and bound["bits_per_byte"] <= bound["bits_per_token"]


def test_the_preflight_report_of_bpe_data_speaks_of_tokens_not_bytes(
    tmp_path: Path, model_file: Path
) -> None:
    import dataclasses

    from engine import preflight
    from engine.data.report import snippet
    from engine.data.text import tokens_to_str

    root = tmp_path / "books"
    root.mkdir()
    (root / "psalm.txt").write_text(PSALM * 3)
    report = preflight(root, read_model_info(model_file).config)
    assert report.ok and report.model["tokenizer"] == "bpe"
    # a report whose model entry predates the "tokenizer" key (a recipe's) is read from C alone
    for r in (
        report,
        dataclasses.replace(report, model={k: v for k, v in report.model.items() if k != "tokenizer"}),
    ):
        assert (
            r.target_line().startswith("sequences of 24 BPE tokens") and "byte tokens" not in r.target_line()
        )
        assert "| separates the BPE tokens" in r.preview_title() and "every byte" not in r.preview_title()
    vocab = read_model_info(model_file).config.vocabulary
    pad = int(vocab.encode(b"\n")[0])
    padded = tokens_to_str(np.array([*vocab.encode(" sake."), pad, pad, pad]), vocab, boundaries=True)
    pieces = "|".join(vocab.token_bytes(int(i)).decode() for i in vocab.encode(" sake."))
    assert snippet(padded, tokens=True) == pieces + " \u23cex3"  # the padding tail is one marker
    byte_cfg = ModelConfig(modality="text", num_classes=256, seq_len=24)
    byte_report = preflight(root, byte_cfg)
    assert (
        "24 byte tokens" in byte_report.target_line()
        and "every byte is one token" in byte_report.preview_title()
    )
