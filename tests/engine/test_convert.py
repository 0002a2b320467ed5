"""``prime convert``: a model re-saved with its weights in float16 is half the size and the same model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine import ModelConfig, PrimeModel, learn_bpe, load_model, read_model_info, save_model
from engine.cli import main


def test_convert_to_float16_halves_the_file_and_keeps_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vocab = learn_bpe([b"In the beginning God created the heaven and the earth. " * 40], 300).tokenizer
    cfg = ModelConfig(modality="text", num_classes=vocab.vocab_size, seq_len=12, tokenizer="bpe",
                      vocabulary=vocab, d_model=32, n_layers=1, n_heads=2, ell=2)  # fmt: skip
    torch.manual_seed(0)
    model = PrimeModel(cfg).eval()
    src = save_model(tmp_path / "m.safetensors", model, {"name": "m"})
    assert main(["convert", str(src), "--out", str(tmp_path / "half")]) == 0
    half = tmp_path / "half.safetensors"
    assert half.stat().st_size < 0.6 * src.stat().st_size
    back, info = load_model(half)
    assert info.card["stored_dtype"] == "float16" and info.card["converted_from"]["path"] == str(src)
    assert back.tokenizer.digest == vocab.digest
    assert all(p.dtype == torch.float32 for p in back.parameters())
    y = torch.randint(0, model.codec.base + 1, (2, 12, 2))
    with torch.no_grad():
        a, b = model(y), back(y)
    assert not torch.equal(a, b)  # the weights were rounded ...
    assert torch.allclose(a, b, atol=2e-2)  # ... to float16 only
    # a second conversion onto the same name is refused unless forced
    capsys.readouterr()
    assert main(["convert", str(src), "--out", str(half)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["convert", str(src), "--out", str(half), "--force", "--dtype", "float32"]) == 0
    assert read_model_info(half).file_size > 0.9 * src.stat().st_size
