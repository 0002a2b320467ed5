"""The one place that picks the device, dtype and autocast."""

from __future__ import annotations

import contextlib
import os

import torch


def pick_device(name: str | None = None) -> torch.device:
    """Pick a device by name: cpu, cuda, cuda:N, mps, or None/"auto" for the best available."""
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available; use --device cpu")
    return device


def autocast(device: torch.device, enabled: bool | None = None) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA by default; on CPU only when ``enabled`` is True."""
    on = device.type == "cuda" if enabled is None else enabled
    if not on:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def configure_cpu_threads(reserve: int = 0) -> int:
    """Use all CPU cores but ``reserve`` for torch's intra-op threads (at least one); returns the count.

    An interactive app reserves a core for its window: torch's worker threads spin while they wait,
    and on a busy machine more threads than free cores slows sampling many times over (measured:
    16 digits at 64 steps took 50 s with 2 threads and 5.6 s with 1 while other jobs ran).
    ``PRIME_THREADS`` overrides the choice.
    """
    override = os.environ.get("PRIME_THREADS")
    if override:
        try:
            threads = int(override)
        except ValueError:
            raise ValueError(f"PRIME_THREADS must be a positive integer, got {override!r}") from None
    else:
        threads = (os.cpu_count() or 1) - reserve
    threads = max(1, threads)
    torch.set_num_threads(threads)
    return threads
