import contextlib
import json
import os
from pathlib import Path

import pytest
import torch

from engine import configure_cpu_threads, pick_device


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_leave_reserved_cores_and_env_overrides(monkeypatch, restore_threads):
    monkeypatch.delenv("PRIME_THREADS", raising=False)
    assert configure_cpu_threads(reserve=1) == max(1, (os.cpu_count() or 1) - 1) == torch.get_num_threads()
    assert configure_cpu_threads(reserve=10_000) == 1
    monkeypatch.setenv("PRIME_THREADS", "1")
    assert configure_cpu_threads(reserve=0) == 1
    monkeypatch.setenv("PRIME_THREADS", "many")
    with pytest.raises(ValueError, match="PRIME_THREADS must be a positive integer"):
        configure_cpu_threads()


def test_pick_device_names_what_is_accepted():
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")


def test_auto_precision_never_uses_bf16_where_the_cpu_emulates_it(monkeypatch):
    from engine import device

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")

    def no_probe(*args, **kwargs):
        raise AssertionError("an AVX2 CPU must not be probed")

    monkeypatch.setattr(device, "_time_training_step", no_probe)
    cpu = torch.device("cpu")
    assert device.bf16_wins(cpu) is False
    assert isinstance(device.autocast(cpu), type(contextlib.nullcontext()))
    assert device.autocast(cpu, True) is not None and not isinstance(
        device.autocast(cpu, True), type(contextlib.nullcontext())
    )


def test_precision_probe_is_measured_once_and_kept_in_the_data_folder(monkeypatch, prime_home):
    from engine import device

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(device, "_PROBES", {})
    timings = iter([0.010, 0.004, 0.010, 0.020])  # fp32, bf16 of the first probe, then a refresh
    monkeypatch.setattr(device, "_time_training_step", lambda bf16: next(timings))
    first = device.cpu_precision_probe()
    assert first["bf16"] is True and first["speedup"] == pytest.approx(2.5)
    stored = json.loads((Path(prime_home) / "machine.json").read_text())
    assert stored[device.machine_key()]["bf16"] is True
    monkeypatch.setattr(device, "_PROBES", {})  # a new process: read from the file, no timing
    assert device.cpu_precision_probe() == first and device.bf16_wins(torch.device("cpu"))
    again = device.cpu_precision_probe(refresh=True)
    assert again["bf16"] is False and not device.bf16_wins(torch.device("cpu"))


def test_real_probe_times_both_precisions(monkeypatch, restore_threads):
    from engine import device

    torch.set_num_threads(1)
    monkeypatch.setattr(device, "_PROBES", {})
    with torch.no_grad():  # evaluation asks under no_grad; the probe still times a backward pass
        result = device.cpu_precision_probe(refresh=True)
    assert result["fp32_s"] > 0 and result["bf16_s"] > 0
    assert result["bf16"] == (result["speedup"] >= device.BF16_MIN_SPEEDUP)


def test_busy_aware_threads_follow_the_load_average(monkeypatch, restore_threads):
    from engine import device

    monkeypatch.delenv("PRIME_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "getloadavg", lambda: (5.2, 1.0, 1.0))
    assert device.free_cores() == 3
    assert configure_cpu_threads(busy_aware=True) == 3 == torch.get_num_threads()
    assert configure_cpu_threads(reserve=1, busy_aware=True) == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (40.0, 1.0, 1.0))
    assert device.free_cores() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert device.free_cores() == 8


def test_training_and_recipes_default_to_auto_precision():
    from engine import TrainConfig
    from engine.training.recipes import RECIPES

    assert TrainConfig().bf16 is None
    assert all(recipe.train.bf16 is None for recipe in RECIPES.values())
