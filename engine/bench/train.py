"""Training throughput benchmark (``prime bench train``, or ``python -m engine.bench.train``).

For each size preset it runs the real trainer (:func:`engine.training.iter_train`, no evaluation,
previews or checkpoints in the timed window) on random byte sequences, in fp32 and with bf16
autocast, and reports tokens per second and model FLOP/s as a fraction of this machine's
measured fp32 matmul peak (:func:`engine.bench.bench_matmul`).

FLOPs per token of a training step (forward + backward): 6 x (weights of every Linear layer)
+ 12 x n_layers x L x d_model for attention scores and values (Kaplan et al. 2020 style count;
embedding look-ups, norms, the softmax and the filter are not counted, so the fraction is a
slight underestimate of the work done).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.bench.matmul import bench_matmul
from engine.bench.report import machine
from engine.config import SIZES as PRESETS
from engine.config import ModelConfig
from engine.data import array_dataset
from engine.models import PrimeModel
from engine.training.config import TrainConfig
from engine.training.loop import iter_train

SIZES = ("tiny", "small", "base")


def train_flops_per_token(config: ModelConfig) -> float:
    """Matmul FLOPs per token of one training step (see the module docstring)."""
    model = PrimeModel(config)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return 6.0 * linear + 12.0 * config.n_layers * config.seq_length * config.d_model


def _config(size: str, seq_len: int, ell: int) -> ModelConfig:
    d_model, n_layers, n_heads = PRESETS[size]
    return ModelConfig(
        modality="text",
        num_classes=256,
        ell=ell,
        seq_len=seq_len,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
    )


def measure(
    config: ModelConfig, batch_size: int, steps: int, warmup_steps: int, bf16: bool, device: str = "cpu"
) -> dict[str, Any]:
    """Tokens/s of the trainer's steps after ``warmup_steps`` untimed ones."""
    rng = np.random.default_rng(0)
    data = array_dataset(rng.integers(0, 256, (4 * batch_size, config.seq_length)), 256, modality="text")
    cfg = TrainConfig(
        steps=warmup_steps + steps,
        batch_size=batch_size,
        warmup=0,
        eval_every=0,
        preview_every=0,
        checkpoint_every=0,
        eval_batches=1,
        device=device,
        bf16=bf16,
        val_fraction=0.0,
        ema=0.999,
    )
    with tempfile.TemporaryDirectory() as folder:
        times: dict[int, float] = {}
        for ev in iter_train(config, cfg, data, Path(folder) / "bench"):
            if ev.kind == "step":
                times[ev.step] = time.perf_counter()
    seconds = times[warmup_steps + steps] - times[warmup_steps]
    tokens = steps * batch_size * config.seq_length
    return {"seconds": seconds, "tokens_per_s": tokens / seconds}


def cuda_matmul_peak(n: int = 8192, repeats: int = 10) -> dict[str, float]:
    """GFLOP/s of square CUDA matmuls (2 n^3 flops), best of ``repeats``, fp32 (no TF32) and bf16."""
    out = {}
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for dtype in (torch.float32, torch.bfloat16):
            a = torch.randn(n, n, device="cuda", dtype=dtype)
            b = torch.randn(n, n, device="cuda", dtype=dtype)
            torch.mm(a, b)
            best = 0.0
            for _ in range(repeats):
                torch.cuda.synchronize()
                started = time.perf_counter()
                torch.mm(a, b)
                torch.cuda.synchronize()
                best = max(best, 2.0 * n**3 / (time.perf_counter() - started) / 1e9)
            out[str(dtype).removeprefix("torch.")] = best
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return out


def run_gpu(steps: int = 20) -> dict[str, Any]:
    """bf16 training throughput of a ~57M-parameter text model on CUDA, vs the bf16 matmul peak."""
    config = ModelConfig(
        modality="text", num_classes=256, ell=2, seq_len=1024, d_model=768, n_layers=8, n_heads=12
    )
    peak = cuda_matmul_peak()
    m = measure(config, batch_size=32, steps=steps, warmup_steps=3, bf16=True, device="cuda")
    gflops = m["tokens_per_s"] * train_flops_per_token(config) / 1e9
    return {
        "size": "gpu-57M",
        "parameters": PrimeModel(config).num_parameters(),
        "precision": "bf16 autocast",
        "device": torch.cuda.get_device_name(),
        "seq_len": config.seq_length,
        "batch_size": 32,
        "steps": steps,
        "tokens_per_s": m["tokens_per_s"],
        "model_gflops": gflops,
        "matmul_peak_gflops": peak,
        "fraction_of_bf16_peak": gflops / peak["bfloat16"],
        "fraction_of_fp32_peak": gflops / peak["float32"],
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    """Benchmark; ``args``: quick, sizes, seq_len, ell, batch_size, steps, threads, matmul_sizes, cpu_only.

    With CUDA (and not ``cpu_only``) it adds ``gpu``: a ~57M-parameter model in bf16 (:func:`run_gpu`).
    """
    quick = bool(args.get("quick", False))
    if args.get("threads"):
        torch.set_num_threads(int(args["threads"]))
    sizes = list(args.get("sizes") or (["tiny", "small"] if quick else list(SIZES)))
    seq_len = int(args.get("seq_len", 128 if quick else 256))
    ell = int(args.get("ell", 2))
    batch_size = int(args.get("batch_size", 8 if quick else 16))
    steps = int(args.get("steps", 3 if quick else 10))
    warmup_steps = 1 if quick else 3
    sizes_mm = args.get("matmul_sizes") or ([256, 512] if quick else [512, 1024])
    matmul = bench_matmul(list(sizes_mm), repeats=3 if quick else 5)
    peak = {
        dtype: max(r["gflops_peak"] for r in matmul["rows"] if r["dtype"] == dtype)
        for dtype in ("float32", "bfloat16")
    }
    rows = []
    for size in sizes:
        config = _config(size, seq_len, ell)
        flops = train_flops_per_token(config)
        for bf16 in (False, True):
            m = measure(config, batch_size, steps, warmup_steps, bf16)
            gflops = m["tokens_per_s"] * flops / 1e9
            rows.append(
                {
                    "size": size,
                    "parameters": PrimeModel(config).num_parameters(),
                    "precision": "bf16 autocast" if bf16 else "fp32",
                    "seq_len": seq_len,
                    "batch_size": batch_size,
                    "steps": steps,
                    "tokens_per_s": m["tokens_per_s"],
                    "model_gflops": gflops,
                    "fraction_of_fp32_peak": gflops / peak["float32"],
                }
            )
    gpu = run_gpu() if torch.cuda.is_available() and not args.get("cpu_only") else None
    return {
        "mode": "train",
        "gpu": gpu,
        "machine": machine(),
        "matmul_peak_gflops": peak,
        "flops_count": "6 x Linear weights + 12 x n_layers x L x d_model per token",
        "rows": rows,
    }


def train_table(report: dict[str, Any]) -> str:
    """The report as a text table."""
    head = ("size", "params", "precision", "tokens/s", "GFLOP/s", "of fp32 peak")
    lines = [head]
    for r in report["rows"]:
        lines.append(
            (
                r["size"],
                f"{r['parameters']:,}",
                r["precision"],
                f"{r['tokens_per_s']:,.0f}",
                f"{r['model_gflops']:.1f}",
                f"{100 * r['fraction_of_fp32_peak']:.0f}%",
            )
        )
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    text = "\n".join("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)) for row in lines)
    peak = report["matmul_peak_gflops"]
    r0 = report["rows"][0]
    out = (
        f"training throughput, text L={r0['seq_len']}, batch {r0['batch_size']}; "
        f"{report['machine']['summary']}; matmul peak fp32 {peak['float32']:.1f} GFLOP/s, "
        f"bf16 {peak['bfloat16']:.1f} GFLOP/s\n{text}"
    )
    gpu = report.get("gpu")
    if gpu:
        out += (
            f"\n{gpu['device']}: {gpu['parameters']:,} parameters, bf16 autocast, L={gpu['seq_len']}, "
            f"batch {gpu['batch_size']}: {gpu['tokens_per_s']:,.0f} tokens/s, "
            f"{gpu['model_gflops']:.0f} GFLOP/s "
            f"= {100 * gpu['fraction_of_bf16_peak']:.0f}% of the measured bf16 matmul peak "
            f"({gpu['matmul_peak_gflops']['bfloat16']:.0f} GFLOP/s)"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.bench.train [--json] [--quick] [--sizes ...]``."""
    p = argparse.ArgumentParser(prog="python -m engine.bench.train", description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", nargs="+", choices=SIZES)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    report = run({"quick": args.quick, "sizes": args.sizes, "threads": args.threads})
    print(json.dumps(report) if args.json else train_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
