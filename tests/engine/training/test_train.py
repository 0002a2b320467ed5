"""The trainer end to end: learning, the bound vs entropy, events, fine-tuning, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.data import DataError
from engine.files.modelfile import load_model, read_model_info
from engine.models import PrimeModel
from engine.training import EVENT_KINDS, TrainConfig, evaluate, iter_train, learning_rate, train
from tests.engine.data._files import image_folder
from tests.engine.training._tiny import FAST, IMG, pattern_data, uniform_data


def _run(*args, **kwargs):
    events = []
    gen = iter_train(*args, **kwargs)
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def test_loss_falls_and_the_bound_improves(tmp_path) -> None:
    data = pattern_data()
    untrained = evaluate(PrimeModel(IMG), data, seed=0, passes=16)
    cfg = FAST.replace(
        steps=100, batch_size=32, eval_every=50, checkpoint_every=0, ema=0.0, warmup=5, lr=1e-2
    )
    events, summary = _run(IMG, cfg, data, tmp_path / "m")
    losses = [e.loss for e in events if e.kind == "step"]
    assert len(losses) == 100
    assert np.mean(losses[-20:]) < 0.9 * np.mean(losses[:5])
    evals = [e.eval for e in events if e.kind == "eval"]
    assert len(evals) == 2 and all(e.split == "validation" for e in evals)
    trained = evaluate(summary.model, data, seed=0, passes=16)
    assert trained.nats_per_token < 0.8 * untrained.nats_per_token
    assert summary.final_eval is evals[-1]


def test_valid_bound_never_beats_the_entropy_of_uniform_data(tmp_path) -> None:
    cfg = FAST.replace(steps=40, checkpoint_every=0, lr=1e-2, objective="surrogate")
    summary = train(IMG, cfg, uniform_data(64, seed=1), tmp_path / "m")
    fresh = uniform_data(512, seed=2)
    result = evaluate(summary.model, fresh, batch_size=128, passes=4, split="all", seed=3)
    assert result.items == 512 and result.samples == 2048
    entropy = math.log(4)  # nats per token
    assert result.nats_per_token >= entropy - 3 * result.stderr_nats_per_token
    assert result.bits_per_dim == pytest.approx(result.nats_per_token / math.log(2))
    assert result.perplexity == pytest.approx(math.exp(result.nats_per_token))


def test_events_previews_and_model_card(tmp_path) -> None:
    cfg = FAST.replace(steps=4, eval_every=2, preview_every=2, checkpoint_every=2, objective="surrogate")
    events, summary = _run(IMG, cfg, pattern_data(), tmp_path / "m")
    kinds = [e.kind for e in events]
    assert set(kinds) <= set(EVENT_KINDS)
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("step") == 4 and kinds.count("preview") == 2 and kinds.count("eval") == 2
    steps = [e for e in events if e.kind == "step"]
    assert all(e.objective == "surrogate" and e.tokens_per_s > 0 and e.eta_s >= 0 for e in steps)
    assert [e.lr for e in steps] == [learning_rate(cfg, k) for k in (1, 2, 3, 4)]
    preview = next(e.preview for e in events if e.kind == "preview")
    assert preview.shape == (2, 8) and int(preview.min()) >= 0 and int(preview.max()) <= 3
    for e in events:
        if e.eval is not None:
            assert e.eval.to_dict()["measure"] == "valid_bound"
    info = read_model_info(summary.model_path)
    card = info.card
    assert card["training"]["steps"] == 4 and card["training"]["objective"] == "surrogate"
    assert card["metrics"]["valid_bound"]["how"].startswith("continuous-time valid bound")
    assert card["data"]["fingerprint"] == pattern_data().fingerprint and card["parent"] is None
    assert card["training"]["hardware"]["device"] == "cpu"
    # EMA weights are what is saved
    model, _ = load_model(summary.model_path)
    for name, value in model.state_dict().items():
        assert torch.equal(value, summary.model.state_dict()[name])


def test_learning_rate_schedules() -> None:
    cfg = TrainConfig(steps=110, lr=1.0, warmup=10, lr_schedule="cosine", min_lr_ratio=0.1)
    assert learning_rate(cfg, 5) == pytest.approx(0.5)
    assert learning_rate(cfg, 10) == pytest.approx(1.0)
    assert learning_rate(cfg, 60) == pytest.approx(0.55)
    assert learning_rate(cfg, 110) == pytest.approx(0.1)
    assert learning_rate(cfg.replace(lr_schedule="constant"), 100) == 1.0


def test_train_config_is_strict() -> None:
    with pytest.raises(ValueError, match="unknown TrainConfig keys: learning_rate"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="objective must be one of"):
        TrainConfig(objective="nll")
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_fine_tune_from_a_model_file(tmp_path) -> None:
    folder = image_folder(tmp_path / "imgs", n=6, size=(8, 4), mode="L")
    parent = train(IMG, FAST.replace(steps=2), folder, tmp_path / "parent")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("some words")
    with pytest.raises(DataError, match="cannot fine-tune parent: .*text file.*image model"):
        train(parent.model_path, FAST, tmp_path / "notes", tmp_path / "child")
    child = train(parent.model_path, FAST.replace(steps=2), folder, tmp_path / "child")
    card = read_model_info(child.model_path).card
    assert card["parent"]["name"] == "parent" and card["parent"]["path"] == parent.model_path
    assert card["preprocessing"]["geometry"]["levels"] == 4


def test_bad_data_is_refused_before_training(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no files"):
        train(IMG, FAST, tmp_path / "empty", tmp_path / "m")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match="none of the 1 file"):
        train(IMG, FAST, tmp_path / "bad", tmp_path / "m")
    assert not list(tmp_path.glob("m*"))


def test_text_folder_trains_and_evaluates(tmp_path) -> None:
    from engine.config import ModelConfig

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_bytes(b"the quick brown fox jumps over the lazy dog\n" * 4)
    (tmp_path / "docs" / "b.md").write_bytes(b"# notes\n\xff invalid utf-8 is fine\n")
    cfg = ModelConfig(modality="text", num_classes=256, ell=2, seq_len=16, d_model=16, n_layers=1, n_heads=2)
    summary = train(cfg, FAST.replace(steps=3, preview_every=3), tmp_path / "docs", tmp_path / "t")
    card = read_model_info(summary.model_path).card
    assert card["data"]["sources"] == 2 and card["preprocessing"]["text_mode"] == "pad"
    assert summary.final_eval.items >= 1 and math.isfinite(summary.final_eval.nats_per_token)
