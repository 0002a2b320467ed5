"""Crash safety: a "running" marker, fatal-error traces in the log, the waiting queue on disk, the notice.

- :func:`claim_session` writes ``<data>/studio.running`` (this process's id and start time) when
  the studio starts and returns what an earlier marker says when that run did not end cleanly
  (:class:`PreviousRun`); :func:`release_session` removes the marker at a clean exit.
- :class:`FaultLogHandler` is the log file's handler; it points :mod:`faulthandler` at the same
  file (again after each rotation), so a fatal error (a segfault, ``none_dealloc``) leaves its
  Python traceback in ``logs/studio.log``.
- :func:`save_waiting` / :func:`load_waiting` keep the generations that wait in the queue in
  ``<data>/waiting-queue.json`` (rewritten atomically whenever the queue changes), so they can be
  queued again after a crash.
- :class:`RecoveryBar` is the non-blocking notice the window shows after an abnormal exit.

This module imports no studio package.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import logging.handlers
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

from studio.enginelink import eng

log = logging.getLogger(__name__)

MARKER_FILE = "studio.running"
QUEUE_FILE = "waiting-queue.json"
START_LINE = "Prime Studio starting"  # the log line each start writes (app.main)
FATAL = "Fatal Python error"
TAIL_BYTES = 256_000


class FaultLogHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that also receives :mod:`faulthandler`'s traces of fatal errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._point_faulthandler()

    def _point_faulthandler(self) -> None:
        if self.stream is None:
            self.stream = self._open()
        faulthandler.enable(file=self.stream, all_threads=True)

    def doRollover(self) -> None:  # noqa: N802 - logging's name
        """Rotate, then point faulthandler at the new file (the old descriptor is closed)."""
        super().doRollover()
        self._point_faulthandler()

    def close(self) -> None:
        """Stop writing fatal traces here before the file closes."""
        if faulthandler.is_enabled():
            faulthandler.disable()
        super().close()


@dataclass(frozen=True)
class PreviousRun:
    """What the marker of a run that did not end cleanly says."""

    pid: int | None
    started: str
    fatal: str | None  # the "Fatal Python error" line it left in the log, if any
    log_path: Path


def _write(path: Path, text: str) -> None:
    with eng.atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _alive(pid: int) -> bool:
    """True when a process with this id runs (and, on Linux, looks like a Prime Studio)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it there
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # an id reused by another program after a reboot is not a studio
        try:
            text = cmdline.read_bytes().decode("utf-8", "replace")
        except OSError:
            return True
        return not text.strip("\0") or "studio" in text or "prime" in text  # (empty: just started)
    return True


def last_fatal_error(log_path: Path) -> str | None:
    """The last "Fatal Python error" line after the last start line of the log (None if none)."""
    lines: list[str] = []
    for path in (log_path.with_name(log_path.name + ".1"), log_path):  # the rotated file is older
        try:
            with open(path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES))
                lines += f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            continue
    starts = [i for i, line in enumerate(lines) if START_LINE in line]
    after = lines[starts[-1] + 1 :] if starts else lines
    fatal = [line.strip() for line in after if FATAL in line]
    return fatal[-1] if fatal else None


def claim_session(data_dir: Path, log_path: Path) -> PreviousRun | None:
    """Mark this process as running; return the earlier run when it did not end cleanly.

    Call it before this start writes its first line to the log (the log's last start line must be
    the earlier run's). Another studio that runs now on the same folder is not a crash: its marker
    stays and None is returned.
    """
    marker = data_dir / MARKER_FILE
    previous = None
    if marker.exists():
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
            if not isinstance(info, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as exc:
            log.warning("unreadable marker %s (%s): treating the last run as interrupted", marker, exc)
            info = {}
        pid = info.get("pid") if isinstance(info.get("pid"), int) else None
        if pid is not None and pid != os.getpid() and _alive(pid):
            log.warning("another Prime Studio (pid %s) is using %s", pid, data_dir)
            return None
        previous = PreviousRun(pid, str(info.get("started", "?")), last_fatal_error(log_path), log_path)
    _write(marker, json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
    return previous


def release_session(data_dir: Path) -> None:
    """Remove this process's marker (a clean exit)."""
    marker = data_dir / MARKER_FILE
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(info, dict) and info.get("pid") == os.getpid():
        marker.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the waiting queue


def save_waiting(data_dir: Path, items: list[dict[str, Any]]) -> None:
    """Write the waiting generations (or remove the file when there are none)."""
    path = data_dir / QUEUE_FILE
    if not items:
        path.unlink(missing_ok=True)
        return
    _write(path, json.dumps({"version": 1, "waiting": items}, indent=1, sort_keys=True))


def load_waiting(data_dir: Path) -> list[dict[str, Any]]:
    """The generations that were waiting when the studio last stopped (valid entries only)."""
    path = data_dir / QUEUE_FILE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("cannot read the waiting queue %s: %s", path, exc)
        return []
    items = payload.get("waiting") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return []
    return [
        item
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("model_path"), str)
        and isinstance(item.get("values"), dict)
    ]


# --------------------------------------------------------------------------- the notice


class RecoveryBar(QFrame):
    """The notice after an abnormal exit: what was restored, Open log, queue the waiting jobs again."""

    open_log = Signal()
    requeue = Signal()
    dismissed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("recoveryBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#recoveryBar { background: rgba(230, 126, 34, 40); }")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.log_button = QPushButton("Open log")
        self.requeue_button = QPushButton("Queue again")
        self.dismiss_button = QPushButton("Dismiss")
        self.log_button.clicked.connect(self.open_log)
        self.requeue_button.clicked.connect(self.requeue)
        self.dismiss_button.clicked.connect(self._dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.text, 1)
        for button in (self.requeue_button, self.log_button, self.dismiss_button):
            layout.addWidget(button)
        self.hide()

    def offer(self, previous: PreviousRun, restored: list[str], waiting: int) -> None:
        """Say what happened and what came back; offer the waiting generations."""
        what = f"Prime Studio did not close properly last time (started {previous.started})"
        if previous.fatal:
            what += f": {previous.fatal}"
        lines = [what + "."]
        if restored:
            lines.append("Restored: " + ", ".join(restored) + ".")
        if waiting:
            lines.append(f"{waiting} generation(s) were running or waiting in the queue.")
        self.text.setText(" ".join(lines))
        self.requeue_button.setText(f"Queue {waiting} again")
        self.requeue_button.setVisible(waiting > 0)
        self.show()

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()
