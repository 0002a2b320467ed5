"""``prime bench``: measurements behind the README's results tables.

Modes:

- ``sample``: for ell = 1, 2, 4, 8 on a default CPU-sized image model, network time per step,
  engine overhead per step (everything but the network, timed by hooks around the model's
  forward), NFE and idle steps at T = 64, 256, 1024 (with the closed-form expected idle count
  T (1 - 1/T)^N of PRIME.md §5 beside it) and trajectory memory in bytes per sub-token.
- ``matmul``: this machine's fp32 and bf16 matmul GFLOP/s (peak and median over repeats).
- ``train``: runs ``python -m engine.training.bench`` (the training owner's benchmark).
- ``gui``: runs ``python -m studio.bench`` in a subprocess (the engine never imports Qt).

Each mode prints a table, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

MODES = ("sample", "matmul", "train", "gui", "quality", "objectives")


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``bench`` on the ``prime`` sub-command parser."""
    p = sub.add_parser(
        "bench",
        parents=[common],
        help="benchmarks: sampler overhead/NFE/idle steps, matmul peak, training, GUI",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument(
        "mode", nargs="?", choices=MODES, default="sample", help="what to measure (default sample)"
    )
    p.add_argument("--ell", type=int, nargs="+", default=[1, 2, 4, 8], help="sample: sub-tokens per token")
    p.add_argument("--steps", type=int, nargs="+", default=[64, 256, 1024], help="sample: step counts T")
    p.add_argument("--size", default="small", help="sample: backbone preset (see 'prime init --help')")
    p.add_argument("--image-size", type=int, default=16, help="sample: image side (grey, C=256)")
    p.add_argument("--num", type=int, default=1, help="sample: samples per run (batch)")
    p.add_argument("--repeats", type=int, default=1, help="sample: runs per setting (seeds 0..n-1)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--models", nargs="+", help="quality: models to compare (default: the bundled four)")
    p.add_argument("--nfe", type=int, nargs="+", help="quality: target NFE (default 8 16 32 64 128)")
    p.add_argument("--samples", type=int, default=256, help="quality/objectives: samples per setting")
    p.add_argument("--train-steps", type=int, default=1200, help="objectives: training steps per objective")
    p.add_argument("--quick", action="store_true", help="a small, fast configuration (sample, matmul, train)")
    p.add_argument(
        "--pass",
        dest="passthrough",
        default="",
        metavar="ARGS",
        help="train/gui: extra options for the underlying benchmark, e.g. --pass='--no-train --steps 64'",
    )
    p.set_defaults(run=run_bench)


# --------------------------------------------------------------------------- sample


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
    """Closed form for the linear grid: T (1 - 1/T)^N (PRIME.md §5)."""
    return steps * (1.0 - 1.0 / steps) ** free_subtokens


def bench_sample(
    ells: list[int],
    steps_list: list[int],
    size: str = "small",
    image_size: int = 16,
    num_samples: int = 1,
    repeats: int = 1,
) -> dict[str, Any]:
    """Time the sampler per (ell, T) on a randomly initialised grey image model (C = 256).

    Random weights are fine here: which digits are revealed, and so NFE and idle steps, does
    not depend on the weights, and the network's cost depends only on its shape.
    """
    from engine.api import SampleRequest
    from engine.cli import SIZES
    from engine.config import ModelConfig
    from engine.models import PrimeModel
    from engine.sampling import sample

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(sorted(SIZES))}")
    d_model, n_layers, n_heads = SIZES[size]
    rows = []
    for ell in ells:
        cfg = ModelConfig(
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
    return {
        "mode": "sample",
        "model": {
            "modality": "image",
            "height": image_size,
            "width": image_size,
            "channels": 1,
            "num_classes": 256,
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


def _sample_table(report: dict[str, Any]) -> str:
    from engine.cli import table

    header = (
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
    title = (
        f"sampler on a random {m['height']}x{m['width']} grey image model (C=256, {m['size']}: "
        f"d_model={m['d_model']}, {m['n_layers']} layers), {m['num_samples']} sample(s), "
        f"{report['repeats']} run(s) each; {report['machine']['summary']}"
    )
    return title + "\n" + table(lines)


# --------------------------------------------------------------------------- matmul


def bench_matmul(sizes: list[int], repeats: int = 10) -> dict[str, Any]:
    """GFLOP/s of square matmuls (2 n^3 flops each) in fp32 and bf16 on the CPU."""
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        for n in sizes:
            gen = torch.Generator().manual_seed(0)
            a = torch.randn(n, n, generator=gen).to(dtype)
            b = torch.randn(n, n, generator=gen).to(dtype)
            torch.mm(a, b)  # warm-up
            rates = []
            for _ in range(repeats):
                started = time.perf_counter()
                torch.mm(a, b)
                rates.append(2.0 * n**3 / (time.perf_counter() - started) / 1e9)
            rows.append(
                {
                    "dtype": str(dtype).removeprefix("torch."),
                    "n": n,
                    "repeats": repeats,
                    "gflops_peak": max(rates),
                    "gflops_median": statistics.median(rates),
                }
            )
    return {"mode": "matmul", "machine": machine(), "rows": rows}


def _matmul_table(report: dict[str, Any]) -> str:
    from engine.cli import table

    lines: list[tuple[object, ...]] = [("dtype", "n", "GFLOP/s peak", "GFLOP/s median")]
    for r in report["rows"]:
        lines.append((r["dtype"], r["n"], f"{r['gflops_peak']:.1f}", f"{r['gflops_median']:.1f}"))
    return f"matmul on {report['machine']['summary']}\n" + table(lines)


# --------------------------------------------------------------------------- other owners' benches


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    threads = torch.get_num_threads()
    summary = f"{platform.machine()} {platform.system()}, torch {torch.__version__}, {threads} thread(s)"
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": threads,
        "summary": summary,
    }


def _module_available(module: str) -> bool:
    """Whether ``module`` exists, without importing it (``studio`` would import Qt)."""
    top, _, rest = module.partition(".")
    spec = importlib.util.find_spec(top)  # a top-level lookup imports nothing
    if spec is None or not spec.submodule_search_locations:
        return False
    relative = Path(*rest.split(".")) if rest else Path()
    return any(
        (Path(loc) / relative).with_suffix(".py").is_file()
        or (Path(loc) / relative / "__main__.py").is_file()
        for loc in spec.submodule_search_locations
    )


def run_module(module: str, args: argparse.Namespace, forwarded: list[str]) -> int:
    """Run ``python -m module`` with ``forwarded`` options plus ``--pass`` ones, streaming its output."""
    if not _module_available(module):
        raise ValueError(f"this benchmark needs {module}, which is not installed in this version")
    command = [sys.executable, "-m", module, *forwarded, *shlex.split(args.passthrough)]
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"'{' '.join(command[1:])}' failed with exit status {completed.returncode}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """``prime bench [mode]``."""
    from engine.cli import emit

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    json_flag = ["--json"] if args.json else []
    if args.mode == "train":
        forwarded = json_flag + (["--quick"] if args.quick else [])
        forwarded += ["--threads", str(args.threads)] if args.threads is not None else []
        return run_module("engine.training.bench", args, forwarded)
    if args.mode == "gui":
        if args.quick:
            raise ValueError(
                "the gui bench has no --quick; give its own options with --pass (python -m studio.bench -h)"
            )
        return run_module("studio.bench", args, json_flag)
    if args.passthrough:
        raise ValueError(f"--pass is for the train and gui benchmarks, not {args.mode!r}")
    if args.mode in ("quality", "objectives"):
        if args.mode == "quality":
            from engine import bench_quality as bench

            options = {"models": args.models, "nfe": args.nfe, "num": args.samples}
        else:
            from engine import bench_objectives as bench

            options = {"steps": args.train_steps, "num": args.samples}
        report = bench.run(options)
        report["machine"] = machine()
        emit(args, report, bench.format_table(report))
        return 0
    if args.mode == "matmul":
        report = bench_matmul(
            [256, 512] if args.quick else [512, 1024, 2048], repeats=3 if args.quick else 10
        )
        emit(args, report, _matmul_table(report))
        return 0
    for value in [*args.ell, *args.steps, args.num, args.repeats, args.image_size]:
        if value < 1:
            raise ValueError(f"--ell, --steps, --num, --repeats and --image-size must be >= 1, got {value}")
    if args.quick:
        report = bench_sample([1, 2], [8, 16], size="tiny", image_size=4, num_samples=1, repeats=1)
    else:
        report = bench_sample(args.ell, args.steps, args.size, args.image_size, args.num, args.repeats)
    emit(args, report, _sample_table(report))
    return 0
