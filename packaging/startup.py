"""Measure how fast a built app starts: cold (bundle not in the page cache) and warm.

::

    python packaging/startup.py                    # dist/PrimeStudio, 1 cold + 3 warm runs
    python packaging/startup.py --dist DIR --warm 5
    python packaging/startup.py --exe /usr/bin/prime-studio   # the installed .deb

Each run is the packaged ``--self-test generate`` headless, in a fresh data folder. Measured from
outside the app, per run:

- ``imports``: launch to the studio's first log line (Python, torch, Qt and the studio imported);
- ``ready``: launch to the start of the scripted session (main window shown, event loop running),
  i.e. the wall time minus the script's own time (which it prints: load the first bundled model,
  generate 4 samples x 32 steps, scrub, branch) minus nothing else (shutdown is included, so
  this slightly overstates);
- ``wall``: launch to exit.

"Cold" evicts the bundle's files from the page cache first (``posix_fadvise(DONTNEED)``; no root
needed), as after a reboot; "warm" runs follow immediately.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build  # noqa: E402

SCRIPT_TIME = re.compile(r"self-test \w+ OK in ([0-9.]+) s")


def evict(folder: Path) -> int:
    """Drop ``folder``'s files from the page cache; returns how many files were advised."""
    count = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            finally:
                os.close(fd)
    return count


def one_run(launch: list[str]) -> dict[str, float]:
    """Launch the self-test once (``launch``: the command before its options); timings in seconds."""
    with tempfile.TemporaryDirectory(prefix="prime-startup-") as home:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PRIME_STUDIO_HOME=home)
        command = [*launch, "--self-test", "generate", "--settings", str(Path(home) / "s.ini")]
        launched = dt.datetime.now()
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=600)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"self-test failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        match = SCRIPT_TIME.search(proc.stdout)
        script = float(match.group(1)) if match else float("nan")
        # A self-test that keeps its log in a throw-away folder of its own leaves none here.
        log = Path(home) / "logs" / "studio.log"
        imports = float("nan")
        if log.is_file():
            first_line = log.read_text(encoding="utf-8").splitlines()[0]
            logged = dt.datetime.strptime(first_line[:23], "%Y-%m-%d %H:%M:%S,%f")
            imports = (logged - launched).total_seconds()
        return {"imports": imports, "ready": wall - script, "wall": wall}


def main(argv: list[str] | None = None) -> int:
    """Run 1 cold and N warm launches and print a table."""
    p = argparse.ArgumentParser(description="Start-up time of the packaged app (cold and warm).")
    p.add_argument("--dist", type=Path, default=build.ROOT / "dist", help="the build's dist folder")
    p.add_argument("--warm", type=int, default=3, help="warm runs after the cold one")
    p.add_argument(
        "--source", action="store_true", help="time `python -m studio.app` in this checkout (warm runs only)"
    )
    p.add_argument(
        "--exe", type=Path, help="time this executable instead, e.g. /usr/bin/prime-studio of the .deb"
    )
    args = p.parse_args(argv)
    rows = []
    if args.source:
        launch, what = [sys.executable, "-m", "studio.app"], f"{sys.executable} -m studio.app (source tree)"
    else:
        exe = args.exe if args.exe is not None else build.executable(args.dist)
        if not exe.is_file():
            print(f"error: {exe} not found; build it first (python packaging/build.py)", file=sys.stderr)
            return 2
        launch = [str(exe)]
        folder = exe.resolve().parent if args.exe is not None else build.app_folder(args.dist)
        files = evict(folder)
        rows.append(("cold", one_run(launch)))
        what = f"{exe} (cold: {files} files evicted from the page cache first)"
    for i in range(args.warm):
        rows.append((f"warm {i + 1}", one_run(launch)))
    print(what)
    print(f"{'run':<8} {'imports s':>9} {'ready s':>8} {'wall s':>7}")
    for name, t in rows:
        print(f"{name:<8} {t['imports']:9.1f} {t['ready']:8.1f} {t['wall']:7.1f}")
    if args.warm:
        warm = [t for name, t in rows if name.startswith("warm")]
        med = {k: statistics.median(t[k] for t in warm) for k in ("imports", "ready", "wall")}
        print(f"{'warm med':<8} {med['imports']:9.1f} {med['ready']:8.1f} {med['wall']:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
