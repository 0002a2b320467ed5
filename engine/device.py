"""The one place that picks the device, dtype, autocast and CPU threads.

bf16 autocast is used only where it is faster: on CUDA GPUs that support it, and on CPUs whose
vector units do bf16 natively and where it pays for a model of the bundled size. A short probe
(one training step of a ``small``-preset model in fp32 and in bf16, under a second) decides that
once per machine and torch build; the answer is kept in the data folder (``machine.json``). On
CPUs with AVX2 but no AVX-512 (most AMD EPYC before Zen 4, for one) bf16 matmuls are emulated
(measured 1.3 against 150 GFLOP/s for fp32), so they are never probed.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time

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
    """bf16 autocast where it wins (``enabled`` None: see :func:`bf16_wins`), or as ``enabled`` says."""
    on = bf16_wins(device) if enabled is None else enabled
    if not on:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


# CPU capabilities (torch.backends.cpu.get_cpu_capability()) whose bf16 is emulated, never native
NO_NATIVE_BF16 = ("DEFAULT", "NO AVX", "AVX2", "VSX", "Z VECTOR")
BF16_MIN_SPEEDUP = 1.1  # bf16 must be at least this much faster than fp32 in the probe
PROBE_VERSION = 2  # part of the cache key: answers of an earlier probe are measured again
_PROBES: dict[str, dict] = {}  # this process's answers, by machine key


def bf16_wins(device: torch.device) -> bool:
    """Whether "auto" precision trains in bf16 autocast on ``device``.

    CUDA: when the GPU supports bf16. CPU: never where bf16 is emulated (capability in
    ``NO_NATIVE_BF16``), else when :func:`cpu_precision_probe` measured it at least
    ``BF16_MIN_SPEEDUP`` times faster than fp32. Other devices: no.
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    if torch.backends.cpu.get_cpu_capability() in NO_NATIVE_BF16:
        return False
    return bool(cpu_precision_probe()["bf16"])


def machine_key() -> str:
    """What the probe's answer depends on: CPU model, vector capability, torch build, threads."""
    return f"probe {PROBE_VERSION} | " + " | ".join(
        (
            _cpu_model(),
            torch.backends.cpu.get_cpu_capability(),
            torch.__version__,
            f"{torch.get_num_threads()} threads",
        )
    )


def cpu_precision_probe(refresh: bool = False) -> dict:
    """Time one training step of a small model (:func:`_time_training_step`) in fp32 and in bf16.

    Returns {"key", "fp32_s", "bf16_s", "speedup", "bf16"}; cached per :func:`machine_key` in
    this process and in ``machine.json`` in the data folder (``refresh`` measures again).
    """
    key = machine_key()
    if not refresh and key in _PROBES:
        return _PROBES[key]
    path = _probe_file()
    stored = _read_probes(path)
    if not refresh and isinstance(stored.get(key), dict) and isinstance(stored[key].get("bf16"), bool):
        _PROBES[key] = stored[key]
        return stored[key]
    fp32, bf16 = _time_training_step(False), _time_training_step(True)
    result = {"key": key, "fp32_s": fp32, "bf16_s": bf16, "speedup": fp32 / bf16}
    result["bf16"] = result["speedup"] >= BF16_MIN_SPEEDUP
    _PROBES[key] = result
    stored[key] = result
    with contextlib.suppress(OSError):  # a read-only data folder only costs a probe next time
        from engine.files.atomic import write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(stored, indent=1, sort_keys=True))
    return result


def _time_training_step(bf16: bool, repeats: int = 3) -> float:
    """Best wall time of one training step of a ``small``-preset text model (the bundled size).

    d_model 128, 4 layers, 4 heads, 128 bytes, ell = 2, batch 8: forward, cross-entropy and
    backward, as the trainer runs them. Runs with gradients on even when called under
    ``torch.no_grad`` (evaluation asks too).
    """
    with torch.inference_mode(False), torch.enable_grad():
        return _time_training_step_with_grad(bf16, repeats)


def _time_training_step_with_grad(bf16: bool, repeats: int) -> float:
    from engine.config import ModelConfig  # the model layer: imported only when probing
    from engine.models import PrimeModel

    cfg = ModelConfig(
        modality="text", num_classes=256, ell=2, seq_len=128, d_model=128, n_layers=4, n_heads=4
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = PrimeModel(cfg)
        y = torch.randint(0, cfg.base + 1, (8, 128, 2))
        target = torch.randint(0, 256, (8, 128))
    context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    best = float("inf")
    for i in range(repeats + 1):  # the first run warms up
        started = time.perf_counter()
        with context:
            logits = model(y)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), target.flatten())
        loss.backward()
        if i:
            best = min(best, time.perf_counter() - started)
    return best


def _probe_file():
    from engine.files.library import data_dir  # the files layer: imported only when probing

    return data_dir() / "machine.json"


def _read_probes(path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def free_cores() -> int:
    """CPU cores not busy with other work: cores minus the 1-minute load average (at least 1)."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows has no load average
        return cores
    return max(1, min(cores, cores - int(load + 0.5)))


def configure_cpu_threads(reserve: int = 0, busy_aware: bool = False) -> int:
    """Set torch's intra-op threads to the cores it can use (at least one); returns the count.

    All cores but ``reserve``; with ``busy_aware``, only the cores the load average leaves free
    (:func:`free_cores`), minus ``reserve``. torch's worker threads spin while they wait, so
    more threads than free cores slows sampling many times over (measured on a busy 2-core
    machine: 16 digits at 64 steps took 50 s with 2 threads and 5.6 s with 1; the CLI with
    torch's default 2 threads 8.5 s against 3.5 s with 1). ``PRIME_THREADS`` overrides the choice.
    """
    override = os.environ.get("PRIME_THREADS")
    if override:
        try:
            threads = int(override)
        except ValueError:
            raise ValueError(f"PRIME_THREADS must be a positive integer, got {override!r}") from None
    else:
        threads = (free_cores() if busy_aware else os.cpu_count() or 1) - reserve
    threads = max(1, threads)
    torch.set_num_threads(threads)
    return threads
