import os

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
