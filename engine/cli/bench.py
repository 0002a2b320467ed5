"""``prime bench``: parses the flags, runs one benchmark of :mod:`engine.bench`, prints it.

Each mode prints a table, or one JSON object with ``--json``; :data:`MODE_HELP` explains each
mode (``prime bench --help`` lists them).
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from engine.api import STRATEGIES
from engine.bench.matmul import bench_matmul, matmul_table
from engine.bench.report import machine
from engine.bench.sample import bench_sample, sample_table
from engine.cli.common import emit

MODE_HELP = {
    "sample": "sampler cost per ell (--ell, default 1 2 4 8) on a CPU-sized image model "
    "(--size, --image-size), or on BPE text models with --classes C ... (--seq-len): network time "
    "and engine overhead per step, NFE and idle steps at "
    "T = --steps (beside the closed-form expected idle count T (1 - 1/T)^N, docs/METHOD.md), "
    "trajectory memory per sub-token",
    "matmul": "this machine's fp32 and bf16 matmul GFLOP/s, peak and median over repeats",
    "train": "training throughput (tokens/s) and model FLOP/s as a share of the matmul peak, per size "
    "preset, fp32 and bf16 autocast (runs python -m engine.bench.train; --pass for its options)",
    "gui": "the studio's responsiveness offscreen: event-loop lateness while generating and training, "
    "scrub render time (runs python -m studio.bench; --pass='--soak 5' for the long run)",
    "quality": "Prime vs MDM at equal NFE on the bundled models (--models): held-out valid bound, then "
    "sample quality, NFE, idle steps and time per target NFE (--nfe) and reveal strategy "
    "(--strategies, --threshold); needs the recipes extra",
    "objectives": "the training objectives (valid bound, unweighted masked cross-entropy, the paper's "
    "surrogate) trained alike (--train-steps) on digits and KJV, each judged by the held-out valid "
    "bound and sample quality; needs the recipes extra",
    "tokenized": "tokenized KJV set-ups (--settings V:ell[:shuffle] ...) trained alike (--train-steps, "
    "small backbone), each judged by the held-out bound in bits per byte, real-word share and time",
}
MODES = tuple(MODE_HELP)


def _modes_epilog() -> str:
    """The ``modes:`` block of ``prime bench --help``: every mode with what it measures, wrapped."""
    import textwrap

    lines = ["modes (default sample; each prints a table, or one JSON object with --json):"]
    for mode, text in MODE_HELP.items():
        lines += textwrap.wrap(
            text, 96, initial_indent=f"  {mode:<11} ", subsequent_indent=" " * 14, break_on_hyphens=False
        )
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``bench`` on the ``prime`` sub-command parser."""
    p = sub.add_parser(
        "bench",
        parents=[common],
        help="benchmarks: " + ", ".join(MODES),
        description="Run one benchmark and print its table (or one JSON object with --json).",
        epilog=_modes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "mode",
        nargs="?",
        choices=MODES,
        default="sample",
        help="what to measure (default sample; see modes below)",
    )
    p.add_argument("--ell", type=int, nargs="+", default=[1, 2, 4, 8], help="sample: sub-tokens per token")
    p.add_argument("--steps", type=int, nargs="+", default=[64, 256, 1024], help="sample: step counts T")
    p.add_argument("--size", default="small", help="sample: backbone preset (see 'prime init --help')")
    p.add_argument("--image-size", type=int, default=16, help="sample: image side (grey, C=256)")
    p.add_argument(
        "--classes",
        type=int,
        nargs="+",
        help="sample: time a BPE text model with these vocabulary sizes C (257..65536, e.g. 4096 50257) "
        "instead of the image model",
    )
    p.add_argument("--seq-len", type=int, default=128, help="sample: tokens per text sample with --classes")
    p.add_argument("--num", type=int, default=1, help="sample: samples per run (batch)")
    p.add_argument("--repeats", type=int, default=1, help="sample: runs per setting (seeds 0..n-1)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--models", nargs="+", help="quality: models to compare (default: the bundled four)")
    p.add_argument("--nfe", type=int, nargs="+", help="quality: target NFE (default 8 16 32 64 128)")
    p.add_argument("--samples", type=int, default=256, help="quality/objectives: samples per setting")
    p.add_argument(
        "--strategies",
        nargs="+",
        choices=STRATEGIES,
        help="quality: reveal strategies to compare (default: all)",
    )
    p.add_argument(
        "--threshold", type=float, default=0.9, help="quality: tau of the threshold strategy (default 0.9)"
    )
    p.add_argument(
        "--train-steps", type=int, default=1200, help="objectives/tokenized: training steps per run"
    )
    p.add_argument(
        "--settings",
        nargs="+",
        metavar="V:ELL[:shuffle]",
        help="tokenized: vocabulary size, ell and optional id shuffling per run "
        "(default 4096:2 8192:1 8192:2 8192:2:shuffle 8192:4)",
    )
    p.add_argument("--quick", action="store_true", help="a small, fast configuration (sample, matmul, train)")
    p.add_argument(
        "--pass",
        dest="passthrough",
        default="",
        metavar="ARGS",
        help="train/gui: extra options for the underlying benchmark, e.g. --pass='--no-train --steps 64'",
    )
    p.set_defaults(run=run_bench)


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
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    json_flag = ["--json"] if args.json else []
    if args.mode == "train":
        forwarded = json_flag + (["--quick"] if args.quick else [])
        forwarded += ["--threads", str(args.threads)] if args.threads is not None else []
        return run_module("engine.bench.train", args, forwarded)
    if args.mode == "gui":
        if args.quick:
            raise ValueError(
                "the gui bench has no --quick; give its own options with --pass (python -m studio.bench -h)"
            )
        return run_module("studio.bench", args, json_flag)
    if args.passthrough:
        raise ValueError(f"--pass is for the train and gui benchmarks, not {args.mode!r}")
    if args.mode in ("quality", "objectives", "tokenized"):
        if args.mode == "quality":
            from engine.bench import quality as bench  # imports sklearn and the bundled models: on demand

            if not 0.0 <= args.threshold <= 1.0:
                raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
            options = {
                "models": args.models,
                "nfe": args.nfe,
                "num": args.samples,
                "strategies": args.strategies,
                "threshold": args.threshold,
            }
        elif args.mode == "tokenized":
            from engine.bench import tokenized as bench

            options = {"steps": args.train_steps, "num": args.samples, "settings": args.settings}
        else:
            from engine.bench import objectives as bench

            options = {"steps": args.train_steps, "num": args.samples}
        report = bench.run(options)
        report["machine"] = machine()
        emit(args, report, bench.format_table(report))
        return 0
    if args.mode == "matmul":
        report = bench_matmul(
            [256, 512] if args.quick else [512, 1024, 2048], repeats=3 if args.quick else 10
        )
        emit(args, report, matmul_table(report))
        return 0
    for value in [*args.ell, *args.steps, args.num, args.repeats, args.image_size, args.seq_len]:
        if value < 1:
            raise ValueError(
                f"--ell, --steps, --num, --repeats, --image-size and --seq-len must be >= 1, got {value}"
            )
    for value in args.classes or []:
        if not 257 <= value <= 65536:
            raise ValueError(f"--classes must be in 257..65536 (a BPE vocabulary size), got {value}")
    if args.quick:
        report = bench_sample(
            [1, 2],
            [8, 16],
            size="tiny",
            image_size=4,
            num_samples=1,
            repeats=1,
            classes=args.classes,
            seq_len=8,
        )
    else:
        report = bench_sample(
            args.ell,
            args.steps,
            args.size,
            args.image_size,
            args.num,
            args.repeats,
            classes=args.classes,
            seq_len=args.seq_len,
        )
    emit(args, report, sample_table(report))
    return 0
