"""Build Prime Studio as a one-folder application with PyInstaller, then smoke-test it.

::

    pip install -e ".[packaging]"     # PyInstaller (once)
    python packaging/build.py         # -> dist/PrimeStudio/PrimeStudio (macOS: dist/Prime Studio.app)

Steps: check PyInstaller; re-render the icons if ``assets/icons/prime-studio.svg`` changed; run
``packaging/prime_studio.spec``; report the bundle's size; run the built app's
``--self-test generate --screenshot`` headless (``QT_QPA_PLATFORM=offscreen``, a throw-away
data folder) and report how long it took; with ``--deb``, build the Debian package
(``packaging/deb.py``). Exit status 0 only if all of it worked.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = HERE / "prime_studio.spec"
sys.path.insert(0, str(HERE))

import icons  # noqa: E402
import manifest  # noqa: E402


def bundle_size(folder: Path) -> tuple[int, int]:
    """(bytes, files) of everything under ``folder``; links are counted once, not followed."""
    total = count = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
            count += 1
    return total, count


def app_folder(dist: Path) -> Path:
    """The one-folder app under ``dist`` (the folder inside the .app on macOS)."""
    if sys.platform == "darwin":
        return dist / manifest.BUNDLE_NAME / "Contents" / "MacOS"
    return dist / manifest.APP_NAME


def executable(dist: Path) -> Path:
    """The built executable."""
    name = manifest.APP_NAME + (".exe" if sys.platform == "win32" else "")
    return app_folder(dist) / name


def run_self_test(exe: Path, screenshot: Path, timeout: float = 600.0) -> tuple[int, float, str]:
    """Run ``exe --self-test generate --screenshot`` headless in a fresh data folder.

    Returns (exit status, wall seconds from launch to exit, combined output).
    """
    with tempfile.TemporaryDirectory(prefix="prime-selftest-") as home:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PRIME_STUDIO_HOME=home)
        command = [
            str(exe),
            "--self-test",
            "generate",
            "--screenshot",
            str(screenshot),
            "--settings",
            str(Path(home) / "settings.ini"),
        ]
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        return proc.returncode, time.perf_counter() - started, proc.stdout + proc.stderr


def link_cli(app_dir: Path) -> Path | None:
    """Linux: ``prime``, a link to ``PrimeStudio`` in the app folder that starts the CLI.

    ``launcher.py`` runs ``engine.cli.main`` when started under that name; one bundle serves as
    both programs (the Debian package links ``/usr/bin/prime`` to it).
    """
    if not sys.platform.startswith("linux"):
        return None
    link = app_dir / "prime"
    if not link.is_symlink():
        link.symlink_to(manifest.APP_NAME)
    return link


def make_archive(dist: Path) -> Path:
    """``dist/PrimeStudio-<platform>.tar.gz`` of the one-folder app (links kept as links)."""
    folder = dist / (manifest.BUNDLE_NAME if sys.platform == "darwin" else manifest.APP_NAME)
    target = dist / f"{manifest.APP_NAME}-{sys.platform}.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return target


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description="Build Prime Studio with PyInstaller (one folder) and test it.")
    p.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    p.add_argument(
        "--work", type=Path, default=ROOT / "build" / "pyinstaller", help="PyInstaller's work folder"
    )
    p.add_argument("--clean", action="store_true", help="empty PyInstaller's cache first (slower)")
    p.add_argument("--no-self-test", action="store_true", help="build only")
    p.add_argument("--archive", action="store_true", help="also pack the folder into a .tar.gz")
    p.add_argument("--deb", action="store_true", help="Linux: also build the .deb (packaging/deb.py)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build, measure, self-test; 0 on success."""
    args = parse_args(argv)
    if importlib.util.find_spec("PyInstaller") is None:
        print(
            'error: PyInstaller is not installed; run  pip install -e ".[packaging]"  '
            "(or  pip install pyinstaller)",
            file=sys.stderr,
        )
        return 2
    if not icons.is_current():
        print("icons: assets/icons/prime-studio.svg changed; re-rendering packaging/icons/")
        icons.render_icons()
    models = sorted(p.name for p in (manifest.ASSETS / "models").glob("*.safetensors"))
    listed = ", ".join(models) if models else "none (the app will offer an untrained model)"
    print(f"bundled models ({len(models)}): {listed}")

    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN"]
    command += ["--distpath", str(args.dist), "--workpath", str(args.work)]
    if args.clean:
        command.append("--clean")
    command.append(str(SPEC))
    print("+", " ".join(command), flush=True)
    started = time.perf_counter()
    if subprocess.run(command, cwd=ROOT, check=False).returncode != 0:
        print("error: PyInstaller failed (see above)", file=sys.stderr)
        return 1
    build_s = time.perf_counter() - started
    exe = executable(args.dist)
    link_cli(app_folder(args.dist))
    size, files = bundle_size(app_folder(args.dist))
    print(f"built {exe} in {build_s / 60:.1f} min: {size / 2**20:.0f} MiB in {files} files")

    if args.archive:
        archive = make_archive(args.dist)
        print(f"archive {archive}: {archive.stat().st_size / 2**20:.0f} MiB")
    if not args.no_self_test:
        screenshot = args.dist / "self-test.png"
        code, wall, output = run_self_test(exe, screenshot)
        print(output.strip())
        if code != 0:
            print(f"error: the built app's self-test failed (exit status {code})", file=sys.stderr)
            return 1
        print(f"self-test passed: {wall:.1f} s from launch to exit; screenshot {screenshot}")
    if args.deb:
        import deb

        return deb.main(["--app", str(app_folder(args.dist)), "--out", str(args.dist)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
