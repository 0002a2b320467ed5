"""``prime bench matmul``: this machine's fp32 and bf16 matmul GFLOP/s (peak and median)."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from engine.bench.report import machine, table


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


def matmul_table(report: dict[str, Any]) -> str:
    """The matmul report as a plain-text table."""
    lines: list[tuple[object, ...]] = [("dtype", "n", "GFLOP/s peak", "GFLOP/s median")]
    for r in report["rows"]:
        lines.append((r["dtype"], r["n"], f"{r['gflops_peak']:.1f}", f"{r['gflops_median']:.1f}"))
    return f"matmul on {report['machine']['summary']}\n" + table(lines)
