"""What every ``prime`` sub-command shares: one-line errors, ``--json`` output and number formats.

Each command module of :mod:`engine.cli` imports this one at the top; it imports nothing of the
CLI's own, so no command module needs another.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any, NoReturn

import torch

from engine.bench.report import table
from engine.data.report import printable as escape_controls
from engine.device import configure_cpu_threads
from engine.files.library import resolve_model
from engine.training.checkpoint import model_path_for

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "CliError",
    "DefaultsHelpFormatter",
    "Interrupted",
    "Parser",
    "add_common_flags",
    "common_parser",
    "dumps",
    "emit",
    "human_count",
    "human_size",
    "json_safe",
    "one_line",
    "printable",
    "resolve_model_path",
    "set_cpu_threads",
    "table",
]

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A usage error: printed as one ``error: ...`` line, exit status 2."""


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C with a message saying what was kept (printed as ``error: MESSAGE``, exit status 130)."""


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (raised, so ``main`` prints them)."""

    def error(self, message: str) -> NoReturn:
        """Raise the usage error as :class:`CliError` instead of exiting."""
        raise CliError(f"{message} (see '{self.prog} --help')")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that states each option's default, ``(default X)``, unless its help already says it.

    Flags without a value (``store_true``) and options without a default get nothing added.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text.lower()
            or action.default in (None, argparse.SUPPRESS)
            or action.nargs == 0
            or not action.option_strings
        ):
            return action.help
        default = " ".join(map(str, action.default)) if isinstance(action.default, list) else action.default
        return f"{text} (default {default})".strip()


def json_safe(value: Any, _depth: int = 0) -> Any:
    """``value`` made strict JSON: NaN and infinities become null, unknown objects their ``str``.

    Cards read from files may hold NaN (Python's json reads it); ``--json`` must never print it.
    """
    if _depth > 64:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, _depth + 1) for v in value]
    return str(value)


def dumps(payload: Any) -> str:
    """One line of strict JSON (no bare NaN or Infinity)."""
    return json.dumps(json_safe(payload), sort_keys=False, allow_nan=False)


def printable(text: Any, keep_newlines: bool = True) -> str:
    r"""``text`` safe for a terminal: control characters shown as ``\xNN`` (as in the data report).

    Escape sequences, BEL, carriage returns and bidirectional overrides cannot move the cursor,
    change colours or retitle the terminal; tabs are kept, and newlines unless ``keep_newlines`` is
    False (then they become spaces).
    """
    text = str(text).replace("\r\n", "\n")
    if not keep_newlines:
        text = text.replace("\n", " ").replace("\r", " ")
    return escape_controls(text)


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    """Print ``payload`` as one JSON object with ``--json``, else the human-readable ``text``.

    The JSON is strict (NaN becomes null); the text has control characters removed (:func:`printable`).
    """
    if getattr(args, "json", False):
        print(dumps(payload))
    elif text:
        print(printable(text))


def human_size(num_bytes: int) -> str:
    """``1.2 MB``: a byte count for people (powers of 1000)."""
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def human_count(count: int) -> str:
    """``1.23 M``, ``4.5 k``: a count for people."""
    if count >= 1_000_000:
        return f"{count / 1e6:.2f} M"
    if count >= 1_000:
        return f"{count / 1e3:.1f} k"
    return str(count)


def common_parser() -> argparse.ArgumentParser:
    """The parent parser with ``--json`` and ``--debug``, shared by every sub-command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object (machine-readable)")
    common.add_argument("--debug", action="store_true", help="show the traceback on errors")
    return common


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` the ``--json`` and ``--debug`` flags unless it has them already."""
    for flag, action in (("--json", "JSON output"), ("--debug", "show the traceback on errors")):
        if flag not in parser._option_string_actions:
            parser.add_argument(flag, action="store_true", help=action)


def one_line(exc: BaseException) -> str:
    """An error as the one line ``prime`` prints after ``error:`` (unexpected ones say so)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:  # "PATH: the disk is full (3.2 MB needed)", no [Errno 28]
        text = " ".join(str(exc.strerror).split())
    if isinstance(exc, (CliError, ValueError, OSError)):
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
            text = f"{exc.filename}: {text}"
        return text
    return f"{type(exc).__name__}: {text} (unexpected; rerun with --debug for the traceback)"


def resolve_model_path(name: str) -> Path:
    """A model file path: as given, with ``.safetensors`` appended (as ``--out`` does), or by library name."""
    for candidate in (Path(name).expanduser(), model_path_for(name)):
        if candidate.is_file():
            return candidate
    return resolve_model(name)


def set_cpu_threads(requested: int | None, ranks: int = 1) -> int:
    """torch's CPU threads for a command: ``--threads``, else ``PRIME_THREADS``, else the free cores.

    The free cores are the ones the load average leaves (shared by ``ranks`` processes started on
    this machine at once). torch's default of one thread per core spins against other work: two
    digits trainings side by side on a 2-core machine took 2.9 s a step with it and 0.35 s with one
    thread each (README, "prime generate").
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be >= 1, got {requested}")
        torch.set_num_threads(requested)
        return requested
    threads = configure_cpu_threads(busy_aware=True)
    if ranks > 1 and not os.environ.get("PRIME_THREADS"):
        threads = max(1, threads // ranks)
        torch.set_num_threads(threads)
    return threads
