"""A real SIGKILL of ``prime train`` leaves a readable checkpoint that ``--resume`` continues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.training.checkpoint import read_checkpoint
from tests.engine.data._files import image_folder

ROOT = Path(__file__).resolve().parents[3]
TINY = [
    "--size",
    "tiny",
    "--height",
    "4",
    "--levels",
    "4",
    "--d-model",
    "16",
    "--n-layers",
    "1",
    "--batch-size",
    "4",
]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_then_resume(tmp_path, capsys) -> None:
    folder = image_folder(tmp_path / "imgs", n=4, mode="L")
    out = tmp_path / "m"
    ckpt = tmp_path / "m.ckpt.safetensors"
    args = ["train", "--data", str(folder), "--out", str(out), "--steps", "100000", "--checkpoint-every", "1"]
    args += ["--eval-every", "0", "--preview-every", "0", *TINY]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "engine", *args], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)  # let it write a few more checkpoints; the kill may land mid-write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert ckpt.exists()
    step = read_checkpoint(ckpt)[1]["state"]["step"]  # complete and readable
    assert step >= 1
    assert not (tmp_path / "m.safetensors").exists()
    code = main([*args[:5], "--steps", str(step + 2), "--resume", *args[7:]])
    assert code == 0, capsys.readouterr().err
    assert read_checkpoint(ckpt)[1]["state"]["step"] == step + 2
    assert (tmp_path / "m.safetensors").is_file()
