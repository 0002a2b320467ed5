"""The ``prime`` command (also ``python -m engine``): models, generation, training and benchmarks.

Every command takes ``--json`` (one machine-readable JSON object on stdout) and ``--debug``
(show tracebacks). Errors print one line ``error: ...`` on stderr and exit with status 2.
The commands drive the same generators as the studio (``iter_sample``, ``iter_train``).

One module per command group (``models``, ``generate``, ``train``, ``eval``, ``bench``), each
importing :mod:`engine.cli.common` and the engine packages at the top; this package's
``__init__`` assembles them into one parser. Nothing outside the CLI imports it.
"""

from __future__ import annotations

import contextlib
import io
import signal
import sys
import traceback
from collections.abc import Sequence

from engine.cli import bench, evaluate, generate, models, train
from engine.cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    Parser,
    common_parser,
    dumps,
    one_line,
    printable,
)
from engine.files.modelfile import ModelFileError, app_version

__all__ = ["build_parser", "main"]


def build_parser() -> Parser:
    """The full ``prime`` argument parser."""
    parser = Parser(
        prog="prime",
        description="Prime Studio engine: discrete diffusion with partial masking (Prime).",
        epilog="MODEL is a library name (see 'prime models') or a path to a .safetensors file.",
    )
    parser.add_argument("--version", action="version", version=f"prime {app_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    common = common_parser()
    models.add_init_parser(sub, common)
    models.add_library_parsers(sub, common)
    generate.add_parser(sub, common)
    train.add_parser(sub)
    evaluate.add_parser(sub)
    bench.add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``prime``; returns the exit status (0 ok, 2 error, 130 interrupted)."""
    program = argv is None  # the real command line (not a call from Python code or a test)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    as_json = "--json" in argv
    for stream in (sys.stdout, sys.stderr):  # generated text on a console that cannot show it
        with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except KeyboardInterrupt as exc:
        if program:
            _ignore_interrupts()
        return _fail(str(exc) or "interrupted", EXIT_INTERRUPTED, as_json)
    except (Exception, ModelFileError) as exc:
        if program:
            _ignore_interrupts()
        if debug:
            traceback.print_exc()
        return _fail(one_line(exc), EXIT_ERROR, as_json)
    finally:
        if program:  # a Ctrl-C while the interpreter shuts down must not kill it by signal
            _ignore_interrupts()


def _fail(message: str, status: int, as_json: bool) -> int:
    """Print ``error: MESSAGE`` on stderr (and with ``--json`` one JSON error object on stdout)."""
    message = printable(message, keep_newlines=False)
    if as_json:
        kind = "interrupted" if status == EXIT_INTERRUPTED else "error"
        with contextlib.suppress(OSError, ValueError):
            print(dumps({"kind": kind, "error": message, "exit_status": status}), flush=True)
    with contextlib.suppress(OSError, ValueError):
        print(f"error: {message}", file=sys.stderr)
    return status


def _ignore_interrupts() -> None:
    """SIGINT ignored from now on (the command is over; Python keeps SIG_IGN through shutdown)."""
    with contextlib.suppress(ValueError, OSError):  # not the main thread: nothing to do
        signal.signal(signal.SIGINT, signal.SIG_IGN)
