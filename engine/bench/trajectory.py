"""What saving an output's trajectory costs: bytes per sub-token and milliseconds.

``python -m engine.bench.trajectory [--models digits-prime kjv-prime] [--samples 64] [--steps 256]
[--repeats 5] [--threads 1] [--json]`` samples each model once (the studio's settings: predictions
recorded), then saves the trajectory with :func:`engine.files.trajectory.save_trajectory` (atomic:
temporary file, fsync, rename) ``--repeats`` times and loads it back as many times. Reported:
sub-tokens N x L x ell, the file size, bytes per sub-token of the whole file and of the digit
record alone (values, reveal steps, corrector events: what does not grow with T), the bytes the
recorded predictions take in the file (only their changes from step to step) and in memory, and
the median save and load times. The same is measured without
predictions (what ``prime``'s sampler keeps by default).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from engine.api import SampleRequest
from engine.bench.report import machine, table
from engine.files.library import resolve_model
from engine.files.modelfile import load_model
from engine.files.trajectory import encode_tensors, load_trajectory, save_trajectory
from engine.sampling import sample


def _digit_bytes(tensors: dict[str, torch.Tensor]) -> int:
    names = ("first_value", "reveal_step", "events.step", "events.count", "events.index", "events.value")
    return int(sum(tensors[n].numel() * tensors[n].element_size() for n in names if n in tensors))


def measure(model_name: str, samples: int, steps: int, repeats: int, predictions: bool) -> dict[str, Any]:
    """Sample once, then time ``repeats`` saves and loads of the trajectory."""
    model, _ = load_model(resolve_model(model_name))
    request = SampleRequest(num_samples=samples, steps=steps, seed=0, record_predictions=predictions)
    started = time.perf_counter()
    result = sample(model, request)
    sampling_s = time.perf_counter() - started
    traj = result.trajectory
    n, length, ell = traj.shape
    tensors, _ = encode_tensors(traj.to_tensors()[0], traj.steps)  # as the file stores them
    settings = {"model": model_name, "seed": 0, "steps": steps, "num_samples": samples}
    save_ms, load_ms = [], []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.trajectory.safetensors"
        for _ in range(repeats):
            t0 = time.perf_counter()
            save_trajectory(path, traj, settings)
            save_ms.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            back, _ = load_trajectory(path)
            load_ms.append((time.perf_counter() - t0) * 1e3)
        size = path.stat().st_size
    assert torch.equal(back.state_at(back.steps_done), traj.state_at(traj.steps_done))
    subtokens = n * length * ell
    pred_bytes = int(sum(t.nbytes for k, t in tensors.items() if k.split(".")[0] == "predictions"))
    raw = traj.predictions.nbytes if traj.predictions is not None else 0
    return {
        "model": model_name,
        "samples": n,
        "steps": traj.steps,
        "predictions": predictions,
        "subtokens": subtokens,
        "file_bytes": size,
        "bytes_per_subtoken": size / subtokens,
        "digit_record_bytes_per_subtoken": _digit_bytes(tensors) / subtokens,
        "prediction_bytes": pred_bytes,
        "prediction_bytes_in_memory": int(raw),
        "save_ms_median": statistics.median(save_ms),
        "load_ms_median": statistics.median(load_ms),
        "save_ms": save_ms,
        "load_ms": load_ms,
        "sampling_s": sampling_s,
    }


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Every model, with and without recorded predictions."""
    torch.set_num_threads(int(options.get("threads", 1)))
    rows = []
    for name in options.get("models", ["digits-prime", "kjv-prime"]):
        for predictions in (True, False):
            rows.append(
                measure(
                    name,
                    int(options.get("samples", 64)),
                    int(options.get("steps", 256)),
                    int(options.get("repeats", 5)),
                    predictions,
                )
            )
    return {"rows": rows, "machine": machine(), "options": options}


def trajectory_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    rows: list[list[object]] = [
        [
            "model",
            "N x T",
            "predictions",
            "sub-tokens",
            "file bytes",
            "B/sub-token",
            "digit record B/sub-token",
            "predictions in file / in memory",
            "save ms",
            "load ms",
        ]
    ]
    for r in report["rows"]:
        rows.append(
            [
                r["model"],
                f"{r['samples']}x{r['steps']}",
                "yes" if r["predictions"] else "no",
                r["subtokens"],
                r["file_bytes"],
                f"{r['bytes_per_subtoken']:.1f}",
                f"{r['digit_record_bytes_per_subtoken']:.1f}",
                f"{r['prediction_bytes']:,} / {r['prediction_bytes_in_memory']:,}"
                if r["predictions"]
                else "-",
                f"{r['save_ms_median']:.1f}",
                f"{r['load_ms_median']:.1f}",
            ]
        )
    return table(rows) + f"\n{report['machine']['summary']}"


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m engine.bench.trajectory", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--models", nargs="+", default=["digits-prime", "kjv-prime"])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(vars(args))
    print(json.dumps(report, indent=2) if args.json else trajectory_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
