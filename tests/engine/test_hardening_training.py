"""Hostile or stale checkpoints (issue 17, items 5 and 6): resume refuses what changes the run.

A real 2-step run makes the checkpoint each test damages; resuming must refuse with a
``CheckpointError`` that says why, or continue and say which settings it kept.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import stat
import struct
import time
from pathlib import Path

import pytest
from safetensors.torch import save_file

from engine.files.modelfile import save_model
from engine.models import PrimeModel
from engine.training import CheckpointError, iter_train, train
from engine.training.checkpoint import checkpoint_state, read_checkpoint
from tests.engine.training._tiny import FAST, IMG, pattern_data

CFG = FAST.replace(steps=2)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """The --out of a finished 2-step run whose checkpoint (step 2) is kept beside it."""
    out = tmp_path / "m"
    train(IMG, CFG, pattern_data(), out)
    (tmp_path / "m.safetensors").unlink()  # resume rewrites the model
    return out


def ckpt_of(out: Path) -> Path:
    return out.with_name(out.name + ".ckpt.safetensors")


def rewrite(
    path: Path, meta_changes: dict[str, str | None] | None = None, tensors: dict | None = None
) -> None:
    """Replace entries of a checkpoint's metadata (None deletes) and/or tensors, keeping the rest."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata())
        old = {k: handle.get_tensor(k) for k in handle.keys()}
    for key, value in (meta_changes or {}).items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    if tensors is not None:
        meta.pop("digest", None)
    save_file(tensors if tensors is not None else old, str(path), metadata=meta)


def resume(out: Path, cfg=None, model=IMG, **kw):
    return train(model, cfg or FAST.replace(steps=4), pattern_data(), out, resume=True, **kw)


def start_event(out: Path, cfg=None, model=IMG):
    gen = iter_train(model, cfg or FAST.replace(steps=4), pattern_data(), out, resume=True)
    event = next(gen)
    gen.close()
    return event


# --------------------------------------------------------------------------- 5: what resume refuses


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_dev_zero_symlink_is_refused_before_reading(tmp_path: Path) -> None:
    out = tmp_path / "m"
    ckpt_of(out).symlink_to("/dev/zero")
    started = time.perf_counter()
    for call in (
        lambda: read_checkpoint(ckpt_of(out)),
        lambda: checkpoint_state(ckpt_of(out)),
        lambda: resume(out),
    ):
        with pytest.raises(CheckpointError, match="not a regular file"):
            call()
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"lr": 3e-2}, "lr 0.003 -> 0.03"),
        ({"lr_schedule": "constant"}, "lr_schedule cosine -> constant"),
        ({"objective": "valid_bound"}, "objective masked_ce -> valid_bound"),
        ({"batch_size": 4}, "batch_size 8 -> 4"),
        ({"warmup": 0}, "warmup 2 -> 0"),
        ({"ema": 0.0}, "ema"),
    ],
)
def test_resume_refuses_settings_that_change_the_run(run: Path, change: dict, named: str) -> None:
    with pytest.raises(CheckpointError, match="would change what the run computes") as caught:
        resume(run, FAST.replace(steps=4, **change))
    assert named in str(caught.value)


def test_resume_refuses_steps_below_the_checkpoint(run: Path) -> None:
    with pytest.raises(CheckpointError, match="at step 2, beyond the 1 steps asked for; give --steps 2"):
        resume(run, FAST.replace(steps=1))


def test_resume_refuses_a_parent_the_run_never_used(run: Path, tmp_path: Path) -> None:
    parent = tmp_path / "parent.safetensors"
    save_model(parent, PrimeModel(IMG), {"description": "some other model"})
    with pytest.raises(
        CheckpointError, match="started from a new, randomly initialised model, not from parent"
    ):
        resume(run, model=str(parent))


@pytest.mark.parametrize("step", [10**9, -5, 1.5, "2", None])
def test_nonsense_steps_in_a_checkpoint_are_refused(run: Path, step: object) -> None:
    path = ckpt_of(run)
    state = dict(read_checkpoint(path)[1]["state"])
    state["step"] = step
    rewrite(path, {"state": json.dumps(state)})
    with pytest.raises(CheckpointError, match="nonsense step"):
        resume(run)
    with pytest.raises(CheckpointError, match="nonsense step"):
        checkpoint_state(path)


def test_a_missing_optim_entry_is_a_checkpoint_error(run: Path) -> None:
    rewrite(ckpt_of(run), {"optim": None})
    with pytest.raises(CheckpointError, match="no optim entry"):
        resume(run)


def test_nan_weights_in_a_checkpoint_are_named_not_blamed_on_the_lr(run: Path) -> None:
    tensors, _ = read_checkpoint(ckpt_of(run))
    name = next(k for k in tensors if k.startswith("model/"))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = math.nan
    rewrite(ckpt_of(run), tensors=tensors)
    with pytest.raises(CheckpointError, match="the checkpoint holds NaN") as caught:
        resume(run)
    assert name in str(caught.value) and "learning rate" not in str(caught.value)


def test_a_flipped_bit_in_a_checkpoint_is_caught_by_its_checksum(run: Path) -> None:
    path = ckpt_of(run)
    raw = bytearray(path.read_bytes())
    start = 8 + struct.unpack("<Q", raw[:8])[0]
    raw[start + 5] ^= 0x01  # inside the first tensor's bytes (still a finite float)
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="do not match their checksum"):
        resume(run)


def test_resume_says_which_settings_it_kept(run: Path) -> None:
    event = start_event(run, FAST.replace(steps=4, eval_every=1, checkpoint_every=1))
    note = event.info["resume"]
    assert note["step"] == 2
    assert note["kept"]["lr"] == FAST.lr and note["kept"]["objective"] == "masked_ce"
    assert note["changed"]["steps"] == [2, 4] and note["changed"]["eval_every"] == [0, 1]
    assert "resumed at step 2 with the checkpoint's settings (lr 0.003, lr_schedule cosine" in event.message
    assert "changed: " in event.message and "steps 2 -> 4" in event.message
    summary = resume(run)
    assert summary.steps_done == 4 and summary.card["training"]["steps"] == 4


# --------------------------------------------------------------------------- 6: leftovers


def test_stale_temporaries_are_removed_on_the_next_start(run: Path) -> None:
    folder = run.parent
    junk = [folder / ".m.ckpt.safetensors.k3j2h1g0.tmp", folder / ".m.ckpt.safetensors.4242.tmp"]
    junk += [folder / ".m.safetensors.abcdefgh.tmp", folder / ".m.safetensors.4242.new.safetensors"]
    for path in junk:
        path.write_bytes(os.urandom(1_500_000))  # what a kill -9 mid-write left: 1.5 MB of nothing
    other = folder / ".unrelated.tmp"
    other.write_bytes(b"not ours")
    event = start_event(run)
    assert "removed the temporary file" in event.message
    assert not any(p.exists() for p in junk)
    assert other.exists()  # only our own naming is touched
    assert resume(run).steps_done == 4


def test_a_complete_temporary_checkpoint_is_used(run: Path) -> None:
    """A kill between the write and the rename: the temporary is complete and further along."""
    ckpt = ckpt_of(run)
    train(IMG, FAST.replace(steps=3), pattern_data(), run, resume=True)  # checkpoint now at step 3
    (run.parent / "m.safetensors").unlink()
    tmp = run.parent / ".m.ckpt.safetensors.zz99yy88.tmp"
    os.replace(ckpt, tmp)
    assert checkpoint_state(tmp)["step"] == 3
    event = start_event(run)
    assert "used the complete checkpoint (step 3)" in event.message
    assert ckpt.exists() and not tmp.exists()
    assert event.info["resumed_from"] == 3


def test_an_older_temporary_is_dropped_and_the_checkpoint_kept(run: Path) -> None:
    ckpt = ckpt_of(run)
    older = run.parent / ".m.ckpt.safetensors.old00000.tmp"
    older.write_bytes(ckpt.read_bytes())  # same step: not further along
    train(IMG, FAST.replace(steps=3), pattern_data(), run, resume=True)
    (run.parent / "m.safetensors").unlink()
    assert not older.exists()
    assert checkpoint_state(ckpt)["step"] == 3


def test_rewriting_a_private_checkpoint_keeps_its_mode(run: Path) -> None:
    ckpt = ckpt_of(run)
    os.chmod(ckpt, 0o600)
    resume(run, FAST.replace(steps=3))
    assert stat.S_IMODE(ckpt.stat().st_mode) == 0o600
    assert checkpoint_state(ckpt)["step"] == 3


# --------------------------------------------------------------------------- kill -9 trials


def kill_trials(trials: int, folder: Path, seed: int = 0) -> dict[str, int]:
    """Kill -9 a real ``prime train`` at random moments, resume each; counts of what was found.

    docs/ROBUSTNESS.md's figures: ``python -c "from tests.engine.test_hardening_training import
    kill_trials as k; from pathlib import Path; import tempfile; print(k(21, Path(tempfile.mkdtemp())))"``
    """
    import random
    import signal
    import subprocess
    import sys

    from engine.cli import main
    from tests.engine.data._files import image_folder

    rng = random.Random(seed)
    root = Path(__file__).resolve().parents[2]
    data = image_folder(folder / "imgs", n=4, mode="L")
    tiny = ["--size", "tiny", "--height", "4", "--levels", "4", "--d-model", "16", "--n-layers", "1"]
    common = [
        "--eval-every",
        "0",
        "--preview-every",
        "0",
        "--checkpoint-every",
        "1",
        "--batch-size",
        "4",
        *tiny,
    ]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    counts = {
        "trials": 0,
        "left_temporaries": 0,
        "resumed": 0,
        "temporaries_after_resume": 0,
        "used_temporary": 0,
    }
    for trial in range(trials):
        out = folder / f"run{trial}" / "m"
        ckpt = ckpt_of(out)
        args = ["train", "--data", str(data), "--out", str(out), "--steps", "100000", *common]
        proc = subprocess.Popen([sys.executable, "-m", "engine", *args], env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.5))  # the kill lands anywhere, mid-write included
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        counts["trials"] += 1
        leftovers = [p for p in out.parent.iterdir() if p.name.startswith(".")]
        counts["left_temporaries"] += bool(leftovers)
        step = checkpoint_state(ckpt)["step"] if ckpt.exists() else 0
        printed = io.StringIO()
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(printed):
            code = main([*args[:5], "--steps", str(step + 2), "--resume", *common, "--json"])
        counts["resumed"] += code == 0
        counts["temporaries_after_resume"] += any(p.name.startswith(".") for p in out.parent.iterdir())
        start = next(json.loads(line) for line in printed.getvalue().splitlines() if '"start"' in line)
        counts["used_temporary"] += "used the complete checkpoint" in start.get("message", "")
    return counts


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "kill") or os.name != "posix", reason="needs SIGKILL")
def test_kill_9_then_resume_leaves_no_temporaries(tmp_path: Path) -> None:
    counts = kill_trials(3, tmp_path)
    assert counts["resumed"] == 3 and counts["temporaries_after_resume"] == 0
