"""Two CPU processes (Gloo) train one model with DDP, stop together on a cancel, resume, and end
with identical parameters."""

from __future__ import annotations

import datetime
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.api import CancelToken
from engine.files.modelfile import load_model
from engine.training import iter_train, train
from tests.engine.training._tiny import FAST, IMG, pattern_data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, folder: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    # The worker owns the process group, so both runs below share it (re-creating a group in the same
    # processes races with the old store; torchrun starts a fresh process per run instead).
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=90))
    cfg = FAST.replace(steps=4, checkpoint_every=0, eval_every=2, grad_accum=2)
    out = os.path.join(folder, "m")
    cancel = CancelToken()
    stopped = 0
    for ev in iter_train(IMG, cfg, pattern_data(), out, cancel):
        stopped = ev.step
        if ev.kind == "step" and ev.step == 2 and rank == 0:
            cancel.cancel()  # only rank 0 is asked; every rank must stop at the same step
    summary = train(IMG, cfg, pattern_data(), out, resume=True)  # both ranks resume the checkpoint
    assert summary.steps_done == 4
    state = {k: v.detach().cpu().contiguous() for k, v in summary.model.state_dict().items()}
    save_file(
        state,
        os.path.join(folder, f"rank{rank}.safetensors"),
        metadata={"model_path": str(summary.model_path), "stopped": str(stopped)},
    )
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_end_identical(tmp_path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = load_file(tmp_path / "rank0.safetensors")
    rank1 = load_file(tmp_path / "rank1.safetensors")
    for rank in (0, 1):
        with safe_open(str(tmp_path / f"rank{rank}.safetensors"), framework="pt") as handle:
            assert handle.metadata()["stopped"] == "2"  # both ranks stopped at the cancelled step
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    saved, info = load_model(tmp_path / "m.safetensors")  # only rank 0 writes
    for name, value in saved.state_dict().items():
        assert torch.equal(value, rank0[name])
    assert info.card["training"]["hardware"]["world_size"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.ckpt.safetensors",
        "m.safetensors",
        "rank0.safetensors",
        "rank1.safetensors",
    ]
