import os
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from studio import app, panels

ROOT = Path(__file__).resolve().parents[2]


def run_app(*args, home, timeout=240):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PRIME_STUDIO_HOME=str(home), PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "studio.app", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_self_test_writes_a_screenshot_and_never_touches_the_users_data(tmp_path, prime_home):
    from engine.files.library import import_model
    from engine.files.modelfile import save_model
    from studio.settings import Settings

    # the caller's data folder as a user has it: settings (in the data folder), a model, a log
    home = Path(prime_home)
    settings = Settings()
    assert settings.path == home / "settings.ini"
    settings.set_json("train/values", {"data_path": "/home/me/pictures"})
    settings.set_json("model/last", "/home/me/model.safetensors")
    settings.sync()
    from conftest import image_config, tiny_model

    import_model(save_model(tmp_path / "mine.safetensors", tiny_model(image_config())), "mine")
    (home / "logs").mkdir()
    (home / "logs" / "studio.log").write_text("earlier sessions\n")
    before = folder_bytes(home)
    assert "settings.ini" in before

    shot = tmp_path / "shot.png"
    proc = run_app("--self-test", "generate", "--screenshot", str(shot), home=prime_home)
    assert proc.returncode == 0, proc.stderr
    assert "self-test generate OK" in proc.stdout
    with Image.open(shot) as image:
        assert image.width > 600 and image.height > 400
    assert folder_bytes(home) == before  # settings byte-identical, no outputs, no log lines
    # it ran in a throw-away data folder, removed after a successful run
    (line,) = [line for line in proc.stdout.splitlines() if "throw-away data folder" in line]
    throwaway = Path(line.split("throw-away data folder ", 1)[1].split(" removed")[0])
    assert throwaway.name.startswith("prime-self-test-") and not throwaway.exists()


def test_unknown_self_test_fails_clearly(tmp_path, prime_home):
    proc = run_app("--self-test", "nonsense", "--settings", str(tmp_path / "s.ini"), home=prime_home)
    assert proc.returncode == 2 and "unknown self-test" in proc.stderr


def test_panels_can_register_self_tests_and_tabs():
    async def script(window, args):
        return None

    panels.register_self_test("demo", script)
    try:
        assert panels.SELF_TESTS["demo"] is script
    finally:
        del panels.SELF_TESTS["demo"]
    assert app.parse_args(["--self-test"]).self_test == "generate"
    assert app.parse_args(["--self-test", "train", "--screenshot", "x.png"]).self_test == "train"


def test_bench_runs_and_reports_json(prime_home):
    import json

    env = dict(
        os.environ, QT_QPA_PLATFORM="offscreen", PRIME_STUDIO_HOME=str(prime_home), PYTHONPATH=str(ROOT)
    )
    args = [
        "--json",
        "--no-train",
        "--steps",
        "8",
        "--samples",
        "1",
        "--size",
        "4",
        "--d-model",
        "16",
        "--layers",
        "1",
        "--render-samples",
        "2",
        "--render-size",
        "4",
        "--idle-seconds",
        "0.1",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "studio.bench", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["generate"]["nfe"] > 0 and report["render"]["n"] == 65  # (a tiny run may end before a tick)
    assert set(report["targets"]) == {"lateness_p99_ms", "lateness_max_ms", "render_max_ms"}


def test_normal_start_opens_the_model_and_files_given(tmp_path, prime_home):
    import numpy as np
    from conftest import image_config, tiny_model

    from engine.files.library import import_model
    from engine.files.modelfile import save_model
    from studio.history import store
    from studio.settings import Settings

    import_model(save_model(tmp_path / "tiny.safetensors", tiny_model(image_config()), {"steps": 5}), "tiny")
    png = store.save_png(tmp_path / "old.png", np.zeros((4, 4, 3), np.uint8), {"seed": 777, "steps": 12})
    ini = tmp_path / "s.ini"
    proc = run_app(
        str(png),
        "--model",
        "tiny",
        "--quit-after",
        "2",
        "--screenshot",
        str(tmp_path / "w.png"),
        "--settings",
        str(ini),
        home=prime_home,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "w.png").exists()
    assert (Path(prime_home) / "logs" / "studio.log").exists()
    settings = Settings(str(ini))
    assert settings.get_json("model/last").endswith("tiny.safetensors")
    values = settings.get_json("generate/values")
    assert (values["seed"], values["steps"], values["seed_mode"]) == (777, 12, "fixed")


def test_a_killed_studio_is_reported_at_the_next_start_and_its_settings_were_saved(tmp_path, prime_home):
    import signal

    from conftest import image_config, tiny_model

    from engine.files.library import import_model
    from engine.files.modelfile import save_model
    from studio.crash import MARKER_FILE
    from studio.settings import Settings

    import_model(save_model(tmp_path / "tiny.safetensors", tiny_model(image_config()), {"steps": 5}), "tiny")
    home = Path(prime_home)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PRIME_STUDIO_HOME=str(home), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "studio.app", "--model", "tiny", "--quit-after", "200"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        last = None
        while time.monotonic() < deadline and proc.poll() is None:
            if (home / "settings.ini").exists():
                last = Settings(home / "settings.ini").get_json("model/last")
                if last:
                    break
            time.sleep(0.2)
        assert last and last.endswith("tiny.safetensors")  # saved while running, not at exit
        assert (home / MARKER_FILE).exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert (home / MARKER_FILE).exists()  # nobody removed it: the next start knows

    proc = run_app("--quit-after", "2", "--screenshot", str(tmp_path / "w.png"), home=home)
    assert proc.returncode == 0, proc.stderr
    log = (home / "logs" / "studio.log").read_text(encoding="utf-8")
    assert "did not end cleanly" in log
    assert "recovery offered: ['window layout', 'model tiny']" in log  # reopened from the saved settings
    assert not (home / MARKER_FILE).exists()  # that start ended cleanly
