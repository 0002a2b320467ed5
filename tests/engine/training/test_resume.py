"""Checkpoints: kill-and-resume reproduces an uninterrupted run; mismatches are refused."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from engine.api import CancelToken
from engine.files.modelfile import load_model
from engine.training import CheckpointError, TrainingError, iter_train, train
from engine.training.checkpoint import read_checkpoint
from tests.engine.training._tiny import FAST, IMG, pattern_data


def _weights(path) -> dict[str, torch.Tensor]:
    model, _ = load_model(path)
    return model.state_dict()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """Weights of an uninterrupted 6-step run."""
    out = tmp_path_factory.mktemp("ref") / "ref"
    summary = train(IMG, FAST, pattern_data(), out)
    assert summary.steps_done == 6 and not summary.cancelled
    return _weights(summary.model_path)


def test_kill_then_resume_matches_an_uninterrupted_run(tmp_path, reference) -> None:
    data = pattern_data()
    gen = iter_train(IMG, FAST, data, tmp_path / "m")
    for ev in gen:
        if ev.kind == "step" and ev.step == 5:
            break
    gen.close()  # a kill: no checkpoint is written for step 5
    tensors, meta = read_checkpoint(tmp_path / "m.ckpt.safetensors")
    assert meta["state"]["step"] == 4 and meta["state"]["samples_seen"] == 4 * 8
    assert not (tmp_path / "m.safetensors").exists()
    summary = train(IMG, FAST, data, tmp_path / "m", resume=True)
    assert summary.steps_done == 6
    assert _same(_weights(summary.model_path), reference)


def test_cancel_writes_a_checkpoint_and_resume_finishes(tmp_path, reference) -> None:
    data, cancel = pattern_data(), CancelToken()
    events = []
    gen = iter_train(IMG, FAST, data, tmp_path / "m", cancel)
    try:
        while True:
            ev = next(gen)
            events.append(ev)
            if ev.kind == "step" and ev.step == 3:
                cancel.cancel()
    except StopIteration as stop:
        summary = stop.value
    assert summary.cancelled and summary.steps_done == 3 and summary.model_path is None
    assert [e.kind for e in events][-2:] == ["checkpoint", "cancelled"]
    assert read_checkpoint(tmp_path / "m.ckpt.safetensors")[1]["state"]["step"] == 3
    summary = train(IMG, FAST, data, tmp_path / "m", resume=True)
    assert summary.steps_done == 6 and summary.card["training"]["steps"] == 6
    assert _same(_weights(summary.model_path), reference)


def test_resume_refuses_other_data_other_model_and_missing_checkpoint(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(IMG, FAST, pattern_data(), tmp_path / "m", resume=True)
    train(IMG, FAST.replace(steps=2), pattern_data(), tmp_path / "m")
    with pytest.raises(CheckpointError, match="different data"):
        train(IMG, FAST, pattern_data(seed=1), tmp_path / "m", resume=True)
    with pytest.raises(CheckpointError, match="different model .*d_model 16 -> 32"):
        train(IMG.replace(d_model=32), FAST, pattern_data(), tmp_path / "m", resume=True)
    with pytest.raises(CheckpointError, match="batch_size 8 -> 4"):
        train(IMG, FAST.replace(batch_size=4), pattern_data(), tmp_path / "m", resume=True)
    with pytest.raises(TrainingError, match="exists from an earlier run"):
        train(IMG, FAST, pattern_data(), tmp_path / "m")


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    real_write = os.write

    def full_disk(fd: int, data) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    gen = iter_train(IMG, FAST, pattern_data(), tmp_path / "m")
    with pytest.raises(CheckpointError, match="disk is full.*previous one is kept"):
        for ev in gen:
            if ev.kind == "checkpoint":
                assert ev.step == 2
                monkeypatch.setattr(os, "write", full_disk)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt.safetensors"]  # no temp file left
    tensors, meta = read_checkpoint(tmp_path / "m.ckpt.safetensors")
    assert meta["state"]["step"] == 2
    summary = train(IMG, FAST, pattern_data(), tmp_path / "m", resume=True)
    assert summary.steps_done == 6


def test_output_folder_removed_mid_run_is_recreated(tmp_path) -> None:
    out = tmp_path / "runs" / "m"
    gen = iter_train(IMG, FAST, pattern_data(), out)
    for ev in gen:
        if ev.kind == "checkpoint" and ev.step == 2:
            (tmp_path / "runs" / "m.ckpt.safetensors").unlink()
            (tmp_path / "runs").rmdir()  # the user deleted the folder
    assert read_checkpoint(tmp_path / "runs" / "m.ckpt.safetensors")[1]["state"]["step"] == 6
    assert (tmp_path / "runs" / "m.safetensors").is_file()


def test_stop_and_save_writes_a_model_marked_stopped_early(tmp_path) -> None:
    from engine.files.modelfile import read_model_info

    cancel = CancelToken()
    gen = iter_train(IMG, FAST, pattern_data(), tmp_path / "m", cancel, save_on_cancel=True)
    kinds = []
    try:
        while True:
            ev = next(gen)
            kinds.append(ev.kind)
            if ev.kind == "step" and ev.step == 3:
                cancel.cancel()
    except StopIteration as stop:
        summary = stop.value
    assert summary.cancelled and summary.steps_done == 3 and summary.model_path is not None
    assert kinds[-1] == "cancelled" and "eval" in kinds
    card = read_model_info(summary.model_path).card
    assert card["training"]["stopped_early"] and card["training"]["planned_steps"] == 6
    assert card["training"]["steps"] == 3 and card["metrics"]["valid_bound"]["measure"] == "valid_bound"


def test_cancel_token_can_ask_for_stop_and_save_late(tmp_path) -> None:
    from engine.training import TrainCancelToken, checkpoint_state

    cancel = TrainCancelToken()
    gen = iter_train(IMG, FAST, pattern_data(), tmp_path / "m", cancel)
    try:
        while True:
            ev = next(gen)
            if ev.kind == "step" and ev.step == 2:
                cancel.cancel(save=True)
    except StopIteration as stop:
        summary = stop.value
    assert summary.cancelled and summary.model_path is not None and summary.steps_done == 2
    state = checkpoint_state(tmp_path / "m.ckpt.safetensors")
    assert state["step"] == 2 and state["steps"] == 6 and state["samples_seen"] == 16
    assert state["data_fingerprint"] == pattern_data().fingerprint and state["model_config"]["ell"] == 2
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint_state(tmp_path / "missing.ckpt.safetensors")
