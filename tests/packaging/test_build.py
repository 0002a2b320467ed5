"""Build the one-folder app with PyInstaller and run its headless self-test (slow).

Runs when PyInstaller is installed (the ``packaging`` extra) and is skipped otherwise;
``PRIME_PACKAGING_TEST=0`` skips it too. Measured on the 2-core CI-class machine: 3.0 min for a
clean build (PyInstaller's cache empty) plus about 30 s for the checks, 7 to 11 min while four
training jobs loaded both cores; it writes about 0.6 GB (plus 1 GB of scratch, removed). The build
is made once per session (:func:`built_app`) and shared with test_deb.py, which packages it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "packaging" / "build.py"
OPT_IN = "PRIME_PACKAGING_TEST"  # "0" skips the build

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get(OPT_IN) == "0", reason=f"{OPT_IN}=0: packaging build skipped"),
    pytest.mark.timeout(3600),
]

# What a lean bundle must not carry: dev and test packages, unused Qt modules, torch's test parts.
ABSENT = [
    "pytest",
    "_pytest",
    "hypothesis",
    "sklearn",
    "scipy",
    "IPython",
    "matplotlib",
    "tkinter",
    "cryptography",
    "setuptools",
    "torch/test",
    "torch/include",
    "PySide6/Qt/translations",
]
ABSENT_QT_LIBS = ("libQt6WebEngine", "libQt6Quick", "libQt6Qml", "libQt63D", "libQt6Pdf", "libQt6Multimedia")
MAX_BUNDLE_MIB = 700  # measured 637 MiB (CPU torch, 4 models); a jump means something heavy leaked in


def built_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one-folder app, built once per test session: this file and test_deb.py share it."""
    pytest.importorskip("PyInstaller", reason="PyInstaller is not installed (pip install -e '.[packaging]')")
    out = tmp_path_factory.getbasetemp() / "packaging-build"
    outcome = out / "outcome.txt"
    if not outcome.exists():
        out.mkdir(exist_ok=True)
        done = subprocess.run(
            [
                sys.executable,
                str(BUILD),
                "--dist",
                str(out / "dist"),
                "--work",
                str(out / "work"),
                "--no-self-test",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=3000,
        )
        shutil.rmtree(out / "work", ignore_errors=True)  # 1 GB of intermediate files
        log = done.stdout[-4000:] + done.stderr[-4000:]
        outcome.write_text("ok" if done.returncode == 0 else f"failed:\n{log}", encoding="utf-8")
    result = outcome.read_text(encoding="utf-8")
    assert result == "ok", result  # a failed build fails every test that needs it, built once
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import build
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    return build.app_folder(out / "dist")


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_app(tmp_path_factory)


def _internal(app_dir: Path) -> Path:
    return app_dir / "_internal" if (app_dir / "_internal").is_dir() else app_dir


def test_bundle_is_lean_and_carries_the_assets(app_dir) -> None:
    internal = _internal(app_dir)
    for rel in ABSENT:
        assert not (internal / rel).exists(), f"{rel} is in the bundle"
    qt_libs = [p.name for p in internal.rglob("libQt6*")]
    assert not [n for n in qt_libs if n.startswith(ABSENT_QT_LIBS)], qt_libs
    for plugin in ("platforms/libqoffscreen.so", "platforms/libqxcb.so", "imageformats/libqsvg.so"):
        if sys.platform.startswith("linux"):
            assert (internal / "PySide6" / "Qt" / "plugins" / plugin).is_file(), plugin
    for path in (ROOT / "assets").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(ROOT / "assets")
            assert (internal / "prime_assets" / rel).is_file(), f"prime_assets/{rel} missing"
    size = sum(p.stat().st_size for p in app_dir.rglob("*") if p.is_file() and not p.is_symlink())
    assert size < MAX_BUNDLE_MIB * 2**20, f"bundle is {size / 2**20:.0f} MiB"
    if sys.platform.startswith("linux"):
        assert (app_dir / "install-desktop-entry.sh").is_file()
        assert (app_dir / "share" / "applications" / "prime-studio.desktop").is_file()


def test_packaged_self_test_generates_headless_with_a_bundled_model(app_dir, tmp_path) -> None:
    internal = _internal(app_dir)
    models = internal / "prime_assets" / "models"
    if not list(models.glob("*.safetensors")):
        # No models were bundled at build time: drop a tiny one in, as a build would have.
        from tests.packaging.test_wheel import _save_probe_model

        models.mkdir(parents=True, exist_ok=True)
        _save_probe_model(models)
    exe = app_dir / ("PrimeStudio.exe" if sys.platform == "win32" else "PrimeStudio")
    settings = tmp_path / "settings.ini"
    shot = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PRIME_STUDIO_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [str(exe), "--self-test", "generate", "--screenshot", str(shot), "--settings", str(settings)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "self-test generate OK" in done.stdout
    from PIL import Image

    with Image.open(shot) as image:
        assert image.width > 400 and image.height > 300
    # The studio remembers the model it opened: a bundled one, found inside the frozen app.
    text = settings.read_text(encoding="utf-8", errors="replace").replace("\\\\", "/")
    assert "prime_assets/models/" in text, text
