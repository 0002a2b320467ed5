"""Studio test setup: offscreen Qt, a qasync loop per test, tiny real models, no leaked threads."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import asyncio  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402
import qasync  # noqa: E402
import torch  # noqa: E402

import engine  # noqa: E402

RUN_TIMEOUT = 120.0  # generous: the CI machine is shared


def image_config(**kw) -> engine.ModelConfig:
    base = dict(
        modality="image",
        num_classes=16,
        ell=2,
        height=4,
        width=4,
        channels=1,
        d_model=16,
        n_layers=1,
        n_heads=2,
    )
    base.update(kw)
    return engine.ModelConfig(**base)


def text_config(**kw) -> engine.ModelConfig:
    base = dict(modality="text", num_classes=256, ell=2, seq_len=24, d_model=16, n_layers=1, n_heads=2)
    base.update(kw)
    return engine.ModelConfig(**base)


def tiny_model(config: engine.ModelConfig, seed: int = 0) -> engine.PrimeModel:
    torch.manual_seed(seed)
    return engine.PrimeModel(config).eval()


@pytest.fixture(autouse=True)
def no_thread_left():
    """Every test must end with the threads it started stopped."""
    before = threading.active_count()
    yield
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    leaked = [t.name for t in threading.enumerate()]
    assert threading.active_count() <= before, f"threads left running: {leaked}"


@pytest.fixture
def loop(qapp):
    """A qasync event loop on the test's QApplication."""
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    yield loop
    try:
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def run(loop):
    """run(coro) -> result, with a timeout, on the qasync loop."""

    def runner(coro, timeout: float = RUN_TIMEOUT):
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))

    return runner


@pytest.fixture
def bridge(loop):
    from studio.bridge import Bridge

    b = Bridge(loop)
    yield b
    b.close()
    assert not b.thread.is_alive()


@pytest.fixture
def settings_path(tmp_path):
    return str(tmp_path / "studio.ini")


@pytest.fixture
def make_window(bridge, settings_path, tmp_path, qtbot):
    """make_window() -> a MainWindow on the shared bridge (closed at the end)."""
    from studio.mainwindow import MainWindow
    from studio.settings import Settings

    windows = []

    def factory(path: str | None = None):
        w = MainWindow(bridge, Settings(path or settings_path), outputs_dir=tmp_path / "outputs")
        qtbot.addWidget(w)
        w.show()
        windows.append(w)
        return w

    yield factory
    for w in windows:
        w.close()


def answer_dialog(button_text: str, timeout_ms: int = 20_000) -> list[str]:
    """Click ``button_text`` in the next modal message box (returns [its text] once it was shown)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    shown: list[str] = []

    def poll(left: int = timeout_ms) -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            shown.append(box.text())
            buttons = {b.text(): b for b in box.buttons()}
            assert button_text in buttons, f"no {button_text!r} in {list(buttons)}"
            buttons[button_text].click()
        elif left > 0:
            QTimer.singleShot(20, lambda: poll(left - 20))

    QTimer.singleShot(0, poll)
    return shown
