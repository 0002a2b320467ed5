"""``prime-studio``: QApplication + qasync event loop + main window.

``prime-studio --self-test [generate|train] --screenshot PATH`` runs a scripted session
offscreen (load a bundled model, or a random one if there is none; generate; scrub to the middle
step; branch), writes a screenshot and exits 0 on success. Self-tests are looked up in
:data:`studio.panels.SELF_TESTS`, so other panels can add theirs (``train`` comes with the
training panel). A self-test runs in a throw-away data folder (settings, logs, history, models),
removed afterwards (kept, and named, when the test fails): it never touches the user's.

Every start marks the data folder as in use (:mod:`studio.crash`) and points faulthandler at the
log; after a run that did not end cleanly the window says so and offers the log. On Linux, the
system libraries of Qt's xcb plugin are checked first (:mod:`studio.qtlibs`): a missing one is
named in one line with its ``apt-get install`` command instead of Qt's abort.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("studio")

SELF_TEST_TIMEOUT = 300.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="prime-studio",
        description="Prime Studio: discrete diffusion with partial masking, every denoising step visible.",
    )
    p.add_argument(
        "--self-test",
        nargs="?",
        const="generate",
        default=None,
        metavar="NAME",
        help="run a scripted session headless and exit (generate [default], train)",
    )
    p.add_argument(
        "files", nargs="*", help="models to import (.safetensors) or PNGs whose settings to restore"
    )
    p.add_argument("--quit-after", type=float, default=0.0, help=argparse.SUPPRESS)  # smoke tests
    p.add_argument("--screenshot", type=Path, help="with --self-test: write a screenshot of the window here")
    p.add_argument("--model", help="model to open (library name or path)")
    p.add_argument(
        "--settings", type=Path, help="use this ini file for settings (default: <data folder>/settings.ini)"
    )
    p.add_argument("--show", action="store_true", help="with --self-test: show the window on the display")
    return p.parse_args(argv)


def log_file(data_dir: Path) -> Path:
    """``<data dir>/logs/studio.log``."""
    return data_dir / "logs" / "studio.log"


def setup_logging(data_dir: Path) -> Path:
    """Log to ``<data dir>/logs/studio.log`` (rotated; fatal-error tracebacks too) and stderr (warnings)."""
    from studio.crash import FaultLogHandler

    path = log_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = FaultLogHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if not any(getattr(h, "baseFilename", None) == handler.baseFilename for h in root.handlers):
        root.addHandler(handler)
    else:
        handler.close()
    return path


def close_logging(data_dir: Path) -> None:
    """Close the log file of ``data_dir`` (before a throw-away data folder is removed)."""
    root = logging.getLogger()
    target = str(log_file(data_dir).resolve())
    for h in list(root.handlers):
        if getattr(h, "baseFilename", None) and str(Path(h.baseFilename).resolve()) == target:
            root.removeHandler(h)
            h.close()


def log_uncaught(kind: type, value: BaseException, tb: Any) -> None:
    """Uncaught exceptions (e.g. in a Qt slot) go to the log as well as stderr."""
    log.error("uncaught exception", exc_info=(kind, value, tb))
    sys.__excepthook__(kind, value, tb)


def asset_path(*parts: str) -> Path:
    """A file under the top-level assets folder (source tree or installed ``prime_assets``)."""
    import importlib.util

    spec = importlib.util.find_spec("prime_assets")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location).joinpath(*parts)
        if candidate.exists():
            return candidate
    return Path(__file__).resolve().parent.parent.joinpath("assets", *parts)


def make_app(argv: list[str]) -> Any:
    """The QApplication with name, icon, style sheet and high-DPI behaviour set."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QIcon
    from PySide6.QtWidgets import QApplication

    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("Prime Studio")
    app.setOrganizationName("Prime Studio")
    app.setDesktopFileName("prime-studio")
    icon = asset_path("icons", "prime-studio.svg")
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    app.setStyle("Fusion")  # follows the system light/dark palette on every platform
    qss = asset_path("styles", "studio.qss")
    if qss.exists():
        app.setStyleSheet(qss.read_text(encoding="utf-8"))
    return app


def apply_saved_theme(settings: Any, app: Any) -> str:
    """Apply the theme chosen in View > Theme (saved in the settings); returns its name.

    "system" leaves the platform's palette alone.
    """
    name = settings.theme()
    if name != "system":
        from studio.theme import apply_theme

        apply_theme(name, app)
    return name


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


async def open_initial_model(window: Any, model: str | None = None) -> Any:
    """Open ``model``, else the last used one, else the first library model, else a random one.

    The last used model opens with the Generate settings saved beside it (its recommendation is
    not applied over them, except to fields an earlier recommendation set and the user left, when
    that recommendation has changed since); any other model puts its recommended settings in the
    fields.
    """
    from studio import enginelink

    candidates = [model] if model else []
    last = window.settings.get_json("model/last")
    if isinstance(last, str) and Path(last).exists():
        candidates.append(last)
    else:
        last = None
    first = window.library.first_usable()
    if first:
        candidates.append(first)
    restored = isinstance(window.settings.get_json("generate/values"), dict)
    for source in candidates:
        keep = restored and last is not None and _same_file(source, last)
        try:
            return await window.session.load_model(source, recommend=not keep, refresh=keep)
        except Exception as exc:  # noqa: BLE001 - fall through to the next candidate, tell the user
            if source == model:
                window.report_error(f"Cannot open {source}", exc)
            log.warning("could not open %s: %s", source, exc)
    handle = await window.session.load_model(enginelink.random_config("image"))
    window.flash(
        "No trained model in the library yet: opened an UNTRAINED random model. Import one to "
        "get real samples.",
        15000,
    )
    return handle


async def self_test_generate(window: Any, args: argparse.Namespace) -> None:
    """Load, generate, scrub to the middle step, branch; every step checked."""
    session = window.session
    if session.handle is None:
        await open_initial_model(window, args.model)
    panel = window.generate_panel
    panel.set_values({"num_samples": 4, "steps": 32, "seed": 1234, "seed_mode": "fixed"})
    entry = await session.generate()
    if entry is None or entry.result.cancelled:
        raise RuntimeError("generation did not finish")
    if window.timeline.entries() != entry.trajectory.steps:
        raise RuntimeError(
            f"timeline has {window.timeline.entries()} entries for {entry.trajectory.steps} steps"
        )
    middle = entry.trajectory.steps // 2
    window.timeline.seek(middle)
    if session.shown_step != middle:
        raise RuntimeError(f"scrubbing to step {middle} showed step {session.shown_step}")
    child = await session.branch(middle, seed=99)
    if child is None or child.parent != entry.id:
        raise RuntimeError("branching did not add a child to the history")
    window.timeline.seek(middle)
    await asyncio.sleep(0.05)


def _train_not_available(window: Any, args: argparse.Namespace):
    raise RuntimeError(
        "self-test 'train' is not available in this build (the training panel is not installed)"
    )


async def run_self_test(window: Any, args: argparse.Namespace) -> int:
    """Run the named self-test, write the screenshot; 0 on success."""
    from studio import panels

    panels.SELF_TESTS.setdefault("generate", self_test_generate)
    name = args.self_test
    script = panels.SELF_TESTS.get(name)
    if script is None:
        if name == "train":
            print("self-test 'train' is not available in this build (no training panel)", file=sys.stderr)
        else:
            print(
                f"unknown self-test {name!r}; available: {', '.join(sorted(panels.SELF_TESTS))}",
                file=sys.stderr,
            )
        return 2
    started = time.perf_counter()
    try:
        await asyncio.wait_for(script(window, args), SELF_TEST_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - reported, exit code 1
        log.exception("self-test %s failed", name)
        print(f"self-test {name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        write_screenshot(window, args.screenshot)
        return 1
    if window.errors:
        print(f"self-test {name} FAILED: error dialogs were shown: {window.errors}", file=sys.stderr)
        return 1
    write_screenshot(window, args.screenshot)
    print(
        f"self-test {name} OK in {time.perf_counter() - started:.1f} s"
        + (f"; screenshot {args.screenshot}" if args.screenshot else "")
    )
    return 0


def write_screenshot(window: Any, path: Path | None) -> None:
    """Save a picture of the whole window."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        raise OSError(f"could not write the screenshot {path}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``prime-studio``."""
    args = parse_args(argv)
    if args.self_test is not None and not args.show and "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    throwaway: Path | None = None
    if args.self_test is not None:  # settings, logs, history and models in a folder of its own
        throwaway = Path(tempfile.mkdtemp(prefix="prime-self-test-"))
        os.environ["PRIME_STUDIO_HOME"] = str(throwaway)  # engine.data_dir() reads it
    from studio import qtlibs

    if qtlibs.uses_xcb():
        missing = qtlibs.check_xcb()
        if missing:
            print(qtlibs.missing_message(missing), file=sys.stderr)
            return 1
    code = 1
    try:
        code = _main(args)
        return code
    finally:
        if throwaway is not None:
            close_logging(throwaway)
            if code == 0:
                shutil.rmtree(throwaway, ignore_errors=True)
                print(f"(throw-away data folder {throwaway} removed)")
            else:
                print(f"self-test data folder kept for inspection: {throwaway}", file=sys.stderr)


def _main(args: argparse.Namespace) -> int:
    import qasync
    from PySide6.QtCore import QTimer

    from studio import crash, enginelink
    from studio.bridge import Bridge
    from studio.mainwindow import MainWindow
    from studio.settings import Settings

    data_dir = enginelink.data_dir()
    log_path = setup_logging(data_dir)
    previous = crash.claim_session(data_dir, log_path)  # before this start's first log line
    sys.excepthook = log_uncaught
    log.info("%s (version %s); log %s", crash.START_LINE, enginelink.app_version(), log_path)
    if previous is not None:
        log.warning("the last run (started %s) did not end cleanly: %s", previous.started, previous.fatal)
    app = make_app(sys.argv[:1])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    bridge = Bridge(loop)
    settings = Settings(args.settings) if args.settings else Settings()
    log.info("settings %s", settings.path)
    apply_saved_theme(settings, app)
    window = MainWindow(bridge, settings)
    window.log_path = log_path
    window.show()
    code = 0

    async def start() -> None:
        nonlocal code
        if args.self_test is not None:
            code = await run_self_test(window, args)
            app.quit()
        else:
            await window._guard(open_initial_model(window, args.model))
            if previous is not None:
                window.offer_recovery(previous)
            # one-time torch imports once the window has settled, not in the middle of the first
            # training run; a background job: anything the user starts goes first
            QTimer.singleShot(3000, lambda: window.bridge.closed or window.bridge.warm_up())
            if args.files:
                window.handle_files([str(Path(f).resolve()) for f in args.files])
            if args.quit_after:
                await asyncio.sleep(args.quit_after)
                write_screenshot(window, args.screenshot)
                code = 1 if window.errors else 0
                window.close()

    try:
        with loop:
            loop.run_until_complete(_run(app, start))
    finally:
        window.save_settings()
        bridge.close()
    crash.release_session(data_dir)  # a clean exit: the next start has nothing to recover
    return code


async def _run(app: Any, start: Any) -> None:
    """Run ``start`` and then wait until the application quits."""
    done = asyncio.Event()
    app.aboutToQuit.connect(done.set)
    app.setQuitOnLastWindowClosed(True)
    asyncio.ensure_future(start())
    await done.wait()


if __name__ == "__main__":
    sys.exit(main())
