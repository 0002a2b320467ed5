"""The Windows and macOS release recipes, checked as far as a Linux machine can (fast).

They run only on the CI service's Windows and macOS runners (.github/workflows/release.yml);
here: the workflow parses and runs the scripts that exist, the scripts parse, the NSIS script
names the files a one-folder build has, and it compiles with Debian's ``nsis`` (``makensis``)
against a stand-in folder with that layout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
NSI = PACKAGING / "windows" / "prime-studio.nsi"


@pytest.fixture()
def manifest(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(PACKAGING))
    for name in ("manifest", "icons"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import manifest as module

    return module


def _workflow() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def test_release_workflow_builds_installs_and_self_tests_on_windows_and_macos() -> None:
    flow = _workflow()
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "workflow_dispatch" in triggers and "push" in triggers
    jobs = flow["jobs"]
    assert jobs["windows"]["runs-on"].startswith("windows-")
    assert jobs["macos"]["runs-on"].startswith("macos-")
    for name, job in jobs.items():
        runs = "\n".join(step.get("run", "") for step in job["steps"])
        assert "packaging/build.py" in runs, name  # the same spec (and its self-test) as Linux
        assert 'pip install "torch==2.13.0"' in runs and '-e ".[packaging]"' in runs, name
        scripts = set(re.findall(r"packaging[\\/][\w\\/.-]+\.(?:nsi|ps1|sh)", runs))
        assert len(scripts) >= 2, (name, scripts)
        for script in scripts:
            assert (ROOT / script.replace("\\", "/")).is_file(), f"{name} runs {script}, which does not exist"
        uploads = [
            step for step in job["steps"] if str(step.get("uses", "")).startswith("actions/upload-artifact")
        ]
        assert uploads and uploads[0]["with"]["if-no-files-found"] == "error", name
    windows = "\n".join(step.get("run", "") for step in jobs["windows"]["steps"])
    assert "prime-studio.nsi" in windows and "test-installer.ps1" in windows
    macos = "\n".join(step.get("run", "") for step in jobs["macos"]["steps"])
    assert "make-dmg.sh" in macos and "test-dmg.sh" in macos


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")
@pytest.mark.parametrize("script", ["make-dmg.sh", "test-dmg.sh"])
def test_macos_scripts_parse(script) -> None:
    path = PACKAGING / "macos" / script
    done = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    text = path.read_text(encoding="utf-8")
    assert "Contents/MacOS/PrimeStudio" in text and "Prime Studio.app" in text


def test_macos_image_script_refuses_a_missing_app_with_a_clear_message(tmp_path) -> None:
    done = subprocess.run(
        [
            "sh",
            str(PACKAGING / "macos" / "make-dmg.sh"),
            str(tmp_path / "Prime Studio.app"),
            str(tmp_path / "x.dmg"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "not a built app bundle" in done.stderr, done.stderr
    assert not (tmp_path / "x.dmg").exists()


def test_macos_names_match_the_spec(manifest) -> None:
    assert manifest.BUNDLE_NAME == "Prime Studio.app" and manifest.APP_NAME == "PrimeStudio"


def test_nsis_script_names_the_files_of_the_build(manifest) -> None:
    text = NSI.read_text(encoding="utf-8")
    assert f'!define EXE "{manifest.APP_NAME}.exe"' in text
    assert 'File /r "${APPDIR}\\_internal"' in text  # PyInstaller's one-folder layout
    icon = re.search(r'!define ICON "([^"]+)"', text)
    assert icon and (NSI.parent / icon.group(1).replace("\\", "/")).resolve() == manifest.icon_file("win32")
    # Start-menu entry, uninstaller and its "Installed apps" entry, all removed again.
    assert (
        'CreateShortcut "$SMPROGRAMS\\${APPNAME}.lnk"' in text
        and 'Delete "$SMPROGRAMS\\${APPNAME}.lnk"' in text
    )
    assert "WriteUninstaller" in text and 'DeleteRegKey HKLM "${UNINSTKEY}"' in text
    # The user's data folder (%APPDATA%\Prime Studio) is never named in the sections, so never removed.
    assert "APPDATA" not in text[text.index('Section "Prime Studio"') :]


def test_windows_installer_test_checks_install_self_test_and_uninstall() -> None:
    text = (PACKAGING / "windows" / "test-installer.ps1").read_text(encoding="utf-8")
    for needle in (
        '"/S"',
        "--self-test",
        "Uninstall.exe",
        "Start Menu",
        "CurrentVersion\\Uninstall\\PrimeStudio",
    ):
        assert needle in text, needle


@pytest.mark.skipif(shutil.which("makensis") is None, reason="makensis not installed (apt-get install nsis)")
def test_nsis_script_compiles_against_a_one_folder_layout(tmp_path, manifest) -> None:
    app = tmp_path / "dist" / manifest.APP_NAME
    (app / "_internal" / "prime_assets" / "models").mkdir(parents=True)
    (app / f"{manifest.APP_NAME}.exe").write_bytes(b"MZ stand-in for the PyInstaller executable")
    (app / "_internal" / "prime_assets" / "models" / "m.safetensors").write_bytes(b"\0" * 1024)
    setup = tmp_path / "dist" / "PrimeStudio-0.1.0-setup.exe"
    done = subprocess.run(
        ["makensis", "-V2", "-WX", "-DVERSION=0.1.0", f"-DAPPDIR={app}", f"-DOUTFILE={setup}", str(NSI)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert setup.read_bytes()[:2] == b"MZ" and setup.stat().st_size > 50_000

    # Without the app folder the build stops with NSIS's own "no files found" error.
    shutil.rmtree(app)
    missing = subprocess.run(
        ["makensis", "-V1", "-DVERSION=0.1.0", f"-DAPPDIR={app}", f"-DOUTFILE={setup}.2", str(NSI)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert missing.returncode != 0 and not Path(f"{setup}.2").exists()
