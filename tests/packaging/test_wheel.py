"""A regular (non-editable) ``pip install .`` finds its bundled models, icons and style sheet.

Installs a copy of the project into a fresh virtual environment (no build isolation, no
dependencies: the running interpreter's site-packages are reused through a ``.pth`` file, so
torch is not installed again), then asks the *installed* code, from outside the source tree,
where its assets are. Measured here: about 40 s on the loaded 2-core machine, so it is marked
slow but stays in the default run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from pathlib import Path
import engine.files.library as library
import studio.app as app
print(json.dumps({
    "engine": str(Path(library.__file__).resolve()),
    "models_dir": str(library.bundled_models_dir().resolve()),
    "models": [e.name for e in library.list_models() if e.bundled],
    "errors": [e.error for e in library.list_models() if e.error],
    "icon": str(app.asset_path("icons", "prime-studio.svg").resolve()),
    "qss": str(app.asset_path("styles", "studio.qss").resolve()),
}))
"""


def _parent_site_dirs() -> list[str]:
    """Where the running interpreter finds torch, PySide6, numpy...: reused by the fresh venv."""
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        dirs.append(site.getusersitepackages())
    seen = []
    for d in dirs:
        if d and Path(d).is_dir() and d not in seen:
            seen.append(d)
    return seen


PROBE_MODEL = "packaging-probe"


def _save_probe_model(folder: Path) -> None:
    """A tiny model file, so the bundled-model path is exercised even before models are bundled."""
    from engine.config import ModelConfig
    from engine.files.modelfile import save_model
    from engine.models import PrimeModel

    config = ModelConfig(
        modality="image",
        num_classes=4,
        ell=2,
        height=2,
        width=2,
        channels=1,
        d_model=16,
        n_layers=1,
        n_heads=2,
    )
    save_model(folder / f"{PROBE_MODEL}.safetensors", PrimeModel(config), {"description": "packaging test"})


def _build_options() -> list[str]:
    """Build with the setuptools already here when it can make wheels; else let pip fetch one."""
    try:
        from importlib.metadata import version

        major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    except Exception:  # noqa: BLE001 - not installed or an odd version string
        return []
    has_wheel = importlib.util.find_spec("wheel") is not None
    if (major, minor) >= (70, 1) or ((major, minor) >= (68, 0) and has_wheel):
        return ["--no-build-isolation", "--no-index"]
    return []  # e.g. a Python 3.11 venv's setuptools 65: pip builds in isolation (needs the index)


def _copy_project(target: Path) -> Path:
    """The files a source distribution would hold (no build/, dist/, .venv or stale egg-info)."""
    target.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("engine", "studio", "assets"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    return target


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="venv layout differs; covered on Linux and macOS")
def test_regular_install_finds_bundled_models_and_assets(tmp_path) -> None:
    project = _copy_project(tmp_path / "project")
    _save_probe_model(project / "assets" / "models")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "_parent_site.pth").write_text("\n".join(_parent_site_dirs()) + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet"]
        + _build_options()
        + [str(project)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    # Run from an unrelated folder with the source copy gone: only the installed files remain.
    shutil.rmtree(project)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = subprocess.run(
        [str(python), "-c", PROBE], cwd=elsewhere, env=env, capture_output=True, text=True, check=False
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    site_dir = Path(purelib).resolve()
    for key in ("engine", "models_dir", "icon", "qss"):
        assert Path(found[key]).is_relative_to(site_dir), (key, found[key])
    assert Path(found["icon"]).is_file() and Path(found["qss"]).is_file()
    assert Path(found["models_dir"]) == site_dir / "prime_assets" / "models"
    shipped = [p.name[: -len(".safetensors")] for p in (ROOT / "assets" / "models").glob("*.safetensors")]
    expected = sorted([*shipped, PROBE_MODEL])

    # Every file of assets/ is installed, and the bundled models are listed (and valid).
    for path in (ROOT / "assets").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(ROOT / "assets")
            assert (site_dir / "prime_assets" / rel).is_file(), f"prime_assets/{rel} not installed"
    assert sorted(found["models"]) == expected
    assert found["errors"] == []

    # The console script of the wheel sees the same library.
    prime = subprocess.run(
        [str(venv / "bin" / "prime"), "models", "--json"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert prime.returncode == 0, prime.stderr
    listed = json.loads(prime.stdout)
    entries = listed["models"] if isinstance(listed, dict) else listed
    assert sorted(e["name"] for e in entries if e["bundled"]) == expected
