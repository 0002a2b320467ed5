"""Crash safety: the running marker, fatal errors in the log, settings and the waiting queue saved as
they change, and the next start after an abnormal exit (notice, layout, model, queue, outputs)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from conftest import image_config, tiny_model

import engine
from engine.files.modelfile import save_model
from studio import crash
from studio.app import open_initial_model
from studio.history.tree import PATH_ROLE
from studio.settings import Settings
from studio.train.selftest import until

ROOT = Path(__file__).resolve().parents[2]


def dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def tree_paths(window) -> set[str]:
    out, stack = (
        set(),
        [
            window.history_panel.tree.topLevelItem(i)
            for i in range(window.history_panel.tree.topLevelItemCount())
        ],
    )
    while stack:
        item = stack.pop()
        if item.data(0, PATH_ROLE):
            out.add(item.data(0, PATH_ROLE))
        stack += [item.child(i) for i in range(item.childCount())]
    return out


# --------------------------------------------------------------------------- marker and log


def test_marker_clean_exit_and_abnormal_exit(tmp_path):
    log = tmp_path / "logs" / "studio.log"
    assert crash.claim_session(tmp_path, log) is None  # first start ever
    assert json.loads((tmp_path / crash.MARKER_FILE).read_text())["pid"] == os.getpid()
    crash.release_session(tmp_path)  # clean exit
    assert not (tmp_path / crash.MARKER_FILE).exists()
    assert crash.claim_session(tmp_path, log) is None

    # a run that died: its marker stays, with its (now dead) process id
    (tmp_path / crash.MARKER_FILE).write_text(
        json.dumps({"pid": dead_pid(), "started": "2026-12-01 08:00:00"})
    )
    log.parent.mkdir(parents=True)
    log.write_text(
        "2026-12-01 07:00:00 INFO studio Prime Studio starting (version 0.1.0)\n"
        "Fatal Python error: an older one, from the run before\n"
        "2026-12-01 08:00:00 INFO studio Prime Studio starting (version 0.1.0)\n"
        "2026-12-01 08:10:00 INFO studio generating\n"
        "Fatal Python error: none_dealloc: deallocating None\n"
        "Current thread 0x00007f (most recent call first):\n"
    )
    previous = crash.claim_session(tmp_path, log)
    assert previous is not None and previous.started == "2026-12-01 08:00:00"
    assert previous.fatal == "Fatal Python error: none_dealloc: deallocating None"
    assert json.loads((tmp_path / crash.MARKER_FILE).read_text())["pid"] == os.getpid()  # ours now


def test_another_running_studio_is_not_a_crash(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "prime-studio"])
    try:
        marker = tmp_path / crash.MARKER_FILE
        marker.write_text(json.dumps({"pid": other.pid, "started": "now"}))
        assert crash.claim_session(tmp_path, tmp_path / "studio.log") is None
        assert json.loads(marker.read_text())["pid"] == other.pid  # its marker is left alone
        crash.release_session(tmp_path)
        assert marker.exists()
    finally:
        other.kill()
        other.wait()
    assert crash.claim_session(tmp_path, tmp_path / "studio.log") is not None  # now it is gone


def test_an_unreadable_marker_counts_as_an_abnormal_exit(tmp_path):
    (tmp_path / crash.MARKER_FILE).write_bytes(b"\x00garbage")
    previous = crash.claim_session(tmp_path, tmp_path / "studio.log")
    assert previous is not None and previous.fatal is None


def test_a_fatal_error_leaves_its_traceback_in_the_log(tmp_path):
    script = (
        "import faulthandler, sys\n"
        "from pathlib import Path\n"
        "from studio.app import setup_logging\n"
        "import logging\n"
        "setup_logging(Path(sys.argv[1]))\n"
        "logging.getLogger('studio').info('Prime Studio starting (test)')\n"
        "def deep_in_the_studio():\n"
        "    faulthandler._sigsegv()\n"
        "deep_in_the_studio()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode != 0
    text = (tmp_path / "logs" / "studio.log").read_text(encoding="utf-8", errors="replace")
    assert "Fatal Python error: Segmentation fault" in text
    assert "deep_in_the_studio" in text  # the Python stack of every thread
    assert (
        crash.last_fatal_error(tmp_path / "logs" / "studio.log") == "Fatal Python error: Segmentation fault"
    )


def test_waiting_queue_file_round_trip_and_bad_files(tmp_path):
    items = [{"model_path": "/m.safetensors", "model": "m", "label": "generate", "values": {"seed": 3}}]
    crash.save_waiting(tmp_path, items)
    assert crash.load_waiting(tmp_path) == items
    crash.save_waiting(tmp_path, [])
    assert not (tmp_path / crash.QUEUE_FILE).exists() and crash.load_waiting(tmp_path) == []
    (tmp_path / crash.QUEUE_FILE).write_text('{"waiting": [{"model_path": 3}, "x"')  # truncated
    assert crash.load_waiting(tmp_path) == []
    (tmp_path / crash.QUEUE_FILE).write_text(
        '{"waiting": [{"model_path": 3}, "x", ' + json.dumps(items[0]) + "]}"
    )
    assert crash.load_waiting(tmp_path) == items  # the valid entry survives


# --------------------------------------------------------------------------- settings as they change


def test_settings_are_saved_as_they_change_without_closing(run, make_window, settings_path):
    w = make_window()
    w.autosave()  # (showing the window set its geometry)
    assert not w.autosave()  # nothing changed since
    w.generate_panel.set_values({"steps": 37, "temperature": 0.8})
    w.queue_dock.hide()
    run(asyncio.sleep(1.6))  # the once-a-second check writes it; the window stays open
    saved = Settings(settings_path)
    assert saved.get_json("generate/values")["steps"] == 37
    assert saved.get_bytes("window/state") == w.saveState()
    before = Path(settings_path).read_bytes()
    assert not w.autosave() and Path(settings_path).read_bytes() == before  # unchanged: not rewritten


def test_settings_live_in_the_data_folder_as_ini(prime_home):
    settings = Settings()
    assert settings.path == Path(prime_home) / "settings.ini"
    settings.set_json("generate/values", {"steps": 5})
    settings.sync()
    assert "[generate]" in (Path(prime_home) / "settings.ini").read_text()


# --------------------------------------------------------------------------- the next start after a crash


def test_after_an_abnormal_exit_the_next_start_offers_recovery_and_restores_everything(
    run, make_window, settings_path, tmp_path, prime_home
):
    model_path = engine.import_model(
        save_model(tmp_path / "crashy.safetensors", tiny_model(image_config()), {"steps": 4}), "crashy"
    )
    data = Path(prime_home)
    gate = threading.Event()

    def busy(token):  # the engine is busy, so the generations below wait in the queue
        while not gate.wait(0.01):
            if token.cancelled:
                return None

    # ---- the first run: a model, a layout, an output, two generations waiting
    a = make_window()
    run(a.session.load_model(str(model_path)))
    a.resize(1500, 700)  # (the default is 720 high; the width is kept within the 800-wide screen)
    a.queue_dock.hide()
    a.generate_panel.set_values({"seed_mode": "fixed", "seed": 5, "num_samples": 1, "steps": 6})
    made = run(a.session.generate())
    assert made.files and made.files[0].exists()
    a.generate_panel.set_values({"steps": 12})
    assert a.autosave()  # (what the once-a-second timer does)

    async def queue_two():
        blocker = a.bridge.submit("probe", "busy", busy)
        for seed, steps in ((11, 8), (22, 9)):
            a.generate_panel.set_values({"seed": seed, "steps": steps})
            a.spawn(a.session.generate())
            await asyncio.sleep(0.05)
        await until(lambda: len([j for j in a.bridge.jobs() if j.kind == "generate"]) == 2, 10, "two queued")
        return blocker

    blocker = run(queue_two())
    waiting = crash.load_waiting(data)
    assert [(i["values"]["seed"], i["values"]["steps"]) for i in waiting] == [(11, 8), (22, 9)]
    assert all(i["model_path"] == str(model_path) for i in waiting)
    a.generate_panel.set_values({"steps": 12})
    a.autosave()

    # ---- the crash: the process dies here; what is on disk is what it left
    on_disk = {p: p.read_bytes() for p in (data / crash.QUEUE_FILE, Path(settings_path))}
    a.autosave_timer.stop()
    a._closing = True  # (the dead window writes nothing more)
    a.bridge.cancel_all()
    gate.set()
    run(until(lambda: not a.bridge.busy and blocker.done(), 30, "the engine to stop"))
    for path, content in on_disk.items():
        path.write_bytes(content)
    (data / crash.MARKER_FILE).write_text(json.dumps({"pid": dead_pid(), "started": "2026-12-01 09:00:00"}))

    # ---- the next start
    previous = crash.claim_session(data, data / "logs" / "studio.log")
    assert previous is not None and previous.started == "2026-12-01 09:00:00"
    b = make_window()
    assert b.height() == 700
    assert b.queue_dock.isHidden()
    assert b.generate_panel.values()["steps"] == 12
    run(open_initial_model(b))
    assert b.session.handle.path == str(model_path)  # the model selected before the crash
    assert str(made.files[0]) in tree_paths(b)  # the output made before the crash is in History
    b.offer_recovery(previous)
    bar = b.recovery_bar
    assert bar.isVisibleTo(b)
    text = bar.text.text()
    assert "did not close properly" in text and "window layout" in text and "model crashy" in text
    assert "1 saved output(s) in History" in text and "2 generation(s) were running or waiting" in text
    assert bar.requeue_button.isVisibleTo(b) and bar.requeue_button.text() == "Queue 2 again"
    assert len(crash.load_waiting(data)) == 2  # still on disk until the user decides

    before = len(b.history)
    bar.requeue_button.click()
    run(until(lambda: len(b.history) == before + 2 and not b.bridge.busy, 60, "both generations"))
    redone = [b.history.get(i) for i in sorted(b.history_panel.items)][-2:]
    assert [(e.settings["seed"], e.result.request.steps) for e in redone] == [(11, 8), (22, 9)]
    assert all(e.model.path == str(model_path) and not e.result.cancelled for e in redone)
    assert bar.isHidden() and b.generate_panel.values()["steps"] == 12  # the form is as it was
    assert crash.load_waiting(data) == []


def test_dismissing_the_offer_forgets_the_waiting_generations(run, make_window, prime_home):
    data = Path(prime_home)
    crash.save_waiting(
        data, [{"model_path": "/gone.safetensors", "model": "gone", "label": "x", "values": {}}]
    )
    previous = crash.PreviousRun(None, "earlier", None, data / "logs" / "studio.log")
    w = make_window()
    w.offer_recovery(previous)
    assert "1 generation(s) were running or waiting" in w.recovery_bar.text.text()
    w.recovery_bar.dismiss_button.click()
    assert w.recovery_bar.isHidden() and crash.load_waiting(data) == []


def test_a_waiting_generation_whose_model_is_gone_is_reported(run, make_window, prime_home):
    data = Path(prime_home)
    crash.save_waiting(
        data,
        [{"model_path": "/nowhere/gone.safetensors", "model": "gone", "label": "generate", "values": {}}],
    )
    w = make_window()
    w.offer_recovery(crash.PreviousRun(None, "earlier", None, data / "logs" / "studio.log"))
    queued = run(w.requeue_waiting())
    assert queued == 0 and len(w.errors) == 1  # an error dialog names it; nothing else breaks
    assert "gone.safetensors" in str(w.errors[0])
    assert crash.load_waiting(data) == []
