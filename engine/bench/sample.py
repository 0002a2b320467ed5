"""``prime bench sample``: the sampler's network time, engine overhead, NFE and idle steps.

For ell = 1, 2, 4, 8 on a default CPU-sized image model: network time per step, engine overhead per
step (everything but the network, timed by hooks around the model's forward), NFE and idle steps at
T = 64, 256, 1024 (with the closed-form expected idle count T (1 - 1/T)^N beside it) and trajectory
memory in bytes per sub-token. With ``classes`` the model is a BPE text model with C classes
(e.g. 4,096 and 50,257) instead, to time the filter and the draws at large C.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from engine.api import SampleRequest
from engine.bench.report import machine, table
from engine.config import SIZES, ModelConfig
from engine.models import PrimeModel
from engine.sampling import sample
from engine.tokenizer import BpeTokenizer, byte_alphabet


class NetworkTimer:
    """Times every forward call of a module with hooks (wall clock, synchronised on CUDA)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._start = 0.0
        self._handles = [
            module.register_forward_pre_hook(self._before),
            module.register_forward_hook(self._after),
        ]
        self._cuda = next(module.parameters()).device.type == "cuda"

    def _before(self, module: torch.nn.Module, inputs: Any) -> None:
        if self._cuda:
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def _after(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if self._cuda:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - self._start
        self.calls += 1

    def close(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()


def expected_idle_steps(steps: int, free_subtokens: int) -> float:
    """Closed form for the linear grid: T (1 - 1/T)^N (docs/METHOD.md §6)."""
    return steps * (1.0 - 1.0 / steps) ** free_subtokens


def pair_vocabulary(size: int) -> BpeTokenizer:
    """A byte-level BPE vocabulary of ``size`` entries: the 256 bytes, then byte pairs as merges.

    For timing and tests at a given C: the sampler's cost depends on C, not on which strings the
    entries stand for, and learning tens of thousands of merges would need a large corpus.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    if not 257 <= size <= 65536:
        raise ValueError(f"a pair vocabulary has 257..65,536 entries, got {size}")
    alphabet = byte_alphabet()
    vocab = {c: i for i, c in enumerate(alphabet)}
    merges = []
    for i in range(size - 256):
        a, b = alphabet[i // 256], alphabet[i % 256]
        vocab[a + b] = 256 + i
        merges.append((a, b))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return BpeTokenizer(tok.to_str(), expected_size=size)


def _configs(
    ells: list[int], classes: list[int] | None, size: str, image_size: int, seq_len: int
) -> list[ModelConfig]:
    d_model, n_layers, n_heads = SIZES[size]
    if not classes:
        return [
            ModelConfig(
                modality="image",
                num_classes=256,
                ell=ell,
                height=image_size,
                width=image_size,
                channels=1,
                d_model=d_model,
                n_layers=n_layers,
                n_heads=n_heads,
            )
            for ell in ells
        ]
    out = []
    for c in classes:
        vocabulary = pair_vocabulary(c)
        for ell in ells:
            out.append(
                ModelConfig(
                    modality="text",
                    tokenizer="bpe",
                    vocabulary=vocabulary,
                    num_classes=c,
                    ell=ell,
                    seq_len=seq_len,
                    d_model=d_model,
                    n_layers=n_layers,
                    n_heads=n_heads,
                )
            )
    return out


def bench_sample(
    ells: list[int],
    steps_list: list[int],
    size: str = "small",
    image_size: int = 16,
    num_samples: int = 1,
    repeats: int = 1,
    classes: list[int] | None = None,
    seq_len: int = 128,
) -> dict[str, Any]:
    """Time the sampler per (ell, T) on a randomly initialised grey image model (C = 256).

    ``classes``: per (C, ell, T) on a random BPE text model of ``seq_len`` tokens instead.
    Random weights are fine here: which digits are revealed, and so NFE and idle steps, does
    not depend on the weights, and the network's cost depends only on its shape.
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(sorted(SIZES))}")
    d_model, n_layers, n_heads = SIZES[size]
    rows = []
    for cfg in _configs(ells, classes, size, image_size, seq_len):
        ell = cfg.ell
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = PrimeModel(cfg).eval()
        sample(model, SampleRequest(num_samples=num_samples, steps=4, seed=0))  # warm-up
        free = cfg.seq_length * ell
        for steps in steps_list:
            timer = NetworkTimer(model)
            total, nfe, idle, traj_bytes, traj_total = 0.0, [], [], 0, 0
            try:
                for seed in range(repeats):
                    request = SampleRequest(
                        num_samples=num_samples, steps=steps, seed=seed, preview_every=steps
                    )
                    started = time.perf_counter()
                    result = sample(model, request)
                    total += time.perf_counter() - started
                    nfe += result.nfe
                    idle += result.idle_steps
                    traj_bytes = result.trajectory.nbytes(per_step=False)
                    traj_total = result.trajectory.nbytes(per_step=True)
            finally:
                timer.close()
            step_count = steps * repeats
            network = timer.seconds
            overhead = max(total - network, 0.0)
            rows.append(
                {
                    "classes": cfg.num_classes,
                    "ell": ell,
                    "steps": steps,
                    "num_samples": num_samples,
                    "network_ms_per_step": 1e3 * network / step_count,
                    "network_ms_per_call": 1e3 * network / max(timer.calls, 1),
                    "overhead_ms_per_step": 1e3 * overhead / step_count,
                    "overhead_ratio": overhead / network if network > 0 else float("inf"),
                    "nfe_mean": statistics.fmean(nfe),
                    "idle_steps_mean": statistics.fmean(idle),
                    "idle_steps_expected": expected_idle_steps(steps, free),
                    "trajectory_bytes_per_subtoken": traj_bytes / (num_samples * free),
                    "trajectory_bytes_per_subtoken_with_step_counters": traj_total / (num_samples * free),
                    "seconds": total,
                }
            )
    shape = (
        {"modality": "text", "seq_len": seq_len, "num_classes": list(classes)}
        if classes
        else {
            "modality": "image",
            "height": image_size,
            "width": image_size,
            "channels": 1,
            "num_classes": 256,
        }
    )
    return {
        "mode": "sample",
        "model": {
            **shape,
            "size": size,
            "num_samples": num_samples,
            "d_model": d_model,
            "n_layers": n_layers,
            "n_heads": n_heads,
        },
        "repeats": repeats,
        "machine": machine(),
        "rows": rows,
    }


def sample_table(report: dict[str, Any]) -> str:
    """The sampler report as a plain-text table."""
    header = (
        "C",
        "ell",
        "T",
        "net ms/call",
        "net ms/step",
        "overhead ms/step",
        "overhead/net",
        "NFE",
        "idle",
        "idle expected",
        "traj B/sub-token",
        "+ step counters",
    )
    lines = [header]
    for r in report["rows"]:
        lines.append(
            (
                r.get("classes", 256),
                r["ell"],
                r["steps"],
                f"{r['network_ms_per_call']:.2f}",
                f"{r['network_ms_per_step']:.2f}",
                f"{r['overhead_ms_per_step']:.2f}",
                f"{100 * r['overhead_ratio']:.1f}%",
                f"{r['nfe_mean']:.1f}",
                f"{r['idle_steps_mean']:.1f}",
                f"{r['idle_steps_expected']:.1f}",
                f"{r['trajectory_bytes_per_subtoken']:.2f}",
                f"{r['trajectory_bytes_per_subtoken_with_step_counters']:.2f}",
            )
        )
    m = report["model"]
    what = (
        f"BPE text model of {m['seq_len']} tokens ("
        if m["modality"] == "text"
        else f"{m['height']}x{m['width']} grey image model (C=256, "
    )
    title = (
        f"sampler on a random {what}{m['size']}: "
        f"d_model={m['d_model']}, {m['n_layers']} layers), {m['num_samples']} sample(s), "
        f"{report['repeats']} run(s) each; {report['machine']['summary']}"
    )
    return title + "\n" + table(lines)
