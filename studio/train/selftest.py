"""``prime-studio --self-test train``: drive the Train tab on a small generated folder.

The run uses a temporary user data folder (``PRIME_STUDIO_HOME``), so the user's library and
runs are never touched; it is removed when the process exits.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

STEPS = 40
TIMEOUT = 240.0


def make_image_folder(folder: Path, count: int = 24, size: int = 8, corrupt: bool = True) -> Path:
    """Grey PNGs of stripes (horizontal or vertical, random phase) plus one corrupt file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        ramp = (np.arange(size) + rng.integers(0, 4)) % 4 < 2
        img = np.repeat(ramp[:, None], size, axis=1) if i % 2 else np.repeat(ramp[None, :], size, axis=0)
        Image.fromarray((img * 255).astype(np.uint8), mode="L").save(folder / f"item{i:03d}.png")
    if corrupt:
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    return folder


async def until(predicate: Any, timeout: float, what: str) -> None:
    """Wait on the GUI loop until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def self_test_train(window: Any, args: Any) -> None:
    """Check a folder, run a short training with checkpoints, find the model in the library."""
    home = Path(tempfile.mkdtemp(prefix="prime-selftest-train-"))
    atexit.register(shutil.rmtree, home, True)
    os.environ["PRIME_STUDIO_HOME"] = str(home)  # keep the user's library untouched
    data = make_image_folder(home / "data")
    window.library.refresh()
    panel = window.extra_panels["Train"]
    window.tabs.setCurrentWidget(panel)
    form = panel.form
    form.new.setChecked(True)
    form.apply_preset("tiny")
    form.set_values({"modality": "image", "height_": 8, "width_": 8, "channels": 1, "levels": 16, "ell": 2})
    form.set_values(
        {"name": "selftest-stripes", "steps": STEPS, "batch": 8, "lr": 3e-3}
        | {"checkpoint_every": 10, "preview_every": 10, "eval_every": 10}
    )
    report = await panel.check_data(str(data))
    if report is None or not report.ok:
        raise RuntimeError(f"the pre-flight check refused the data: {report and report.problem}")
    if [s.path for s in report.skipped] != ["broken.png"]:
        raise RuntimeError(f"expected broken.png to be skipped, got {report.skipped}")
    await panel.measure_speed()
    if panel.start() is None:
        raise RuntimeError(f"Start was refused: {panel.start_blocker()}")
    record = panel.record
    await until(lambda: panel.state == "idle" and panel.job is None, TIMEOUT, "training")
    if record.status != "done":
        raise RuntimeError(f"the run ended as {record.status}: {record.message}")
    if len(panel.view.loss_chart.points) != STEPS or not panel.view.bpd_chart.points:
        raise RuntimeError("the charts did not receive every step and a validation point")
    if panel.view.checkpoints.count() < 3:
        raise RuntimeError(f"expected checkpoints every 10 steps, got {panel.view.checkpoints.count()}")
    from studio.enginelink import eng

    names = {e.name for e in eng.list_models()}
    if "selftest-stripes" not in names:
        raise RuntimeError(f"the trained model is not in the library: {sorted(names)}")
    await asyncio.sleep(0.1)
