"""Shared test setup: few threads, an isolated user data folder per test, headless Qt."""

from __future__ import annotations

import os

# before anything imports Qt: no display is needed (or available in CI)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

# The suite shares 2 cores with other work; more threads only add contention for tiny models.
torch.set_num_threads(int(os.environ.get("PRIME_TEST_THREADS", "1")))

# Timing-based deadlines are flaky on a loaded 2-core machine; examples stay bounded by max_examples.
settings.register_profile("prime", deadline=None)
settings.load_profile("prime")


@pytest.fixture(autouse=True)
def prime_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> os.PathLike[str]:
    """Every test gets its own empty user data folder (PRIME_STUDIO_HOME)."""
    home = tmp_path_factory.mktemp("prime-home")
    monkeypatch.setenv("PRIME_STUDIO_HOME", str(home))
    return home
