"""The ``prime`` command (also ``python -m engine``): models, generation, training and benchmarks.

Every command takes ``--json`` (one machine-readable JSON object on stdout) and ``--debug``
(show tracebacks). Errors print one line ``error: ...`` on stderr and exit with status 2.
The commands drive the same generators as the studio (``iter_sample``, ``iter_train``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from engine.checkpoints import ModelFileError, ModelInfo, app_version, read_model_info, save_model
from engine.config import MODALITIES, SCHEDULES, ModelConfig

# size presets: (d_model, n_layers, n_heads)
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (64, 2, 4),
    "small": (128, 4, 4),
    "base": (256, 6, 8),
}
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A usage error: printed as one ``error: ...`` line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (raised, so ``main`` prints them)."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')")


# --------------------------------------------------------------------------- output helpers


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    """Print ``payload`` as one JSON object with ``--json``, else the human-readable ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(payload, sort_keys=False, default=str))
    elif text:
        print(text)


def _human_size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _human_count(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1e6:.2f} M"
    if count >= 1_000:
        return f"{count / 1e3:.1f} k"
    return str(count)


def describe_config(cfg: ModelConfig) -> str:
    """One line about the data side of a config: modality, shape, C, ell and base."""
    if cfg.modality == "image":
        shape = f"image {cfg.height}x{cfg.width}x{cfg.channels}"
    else:
        shape = f"text ({cfg.tokenizer}) of {cfg.seq_len} tokens"
    return f"{shape}, C={cfg.num_classes}, ell={cfg.ell} (base {cfg.base})"


def format_info(info: ModelInfo) -> str:
    """Human-readable ``prime info`` text."""
    cfg = info.config
    lines = [
        f"name:       {info.name}",
        f"path:       {info.path}",
        f"data:       {describe_config(cfg)}",
        f"tokens:     L={cfg.seq_length}, {cfg.seq_length * cfg.ell} sub-tokens",
        f"backbone:   transformer d_model={cfg.d_model} n_layers={cfg.n_layers} n_heads={cfg.n_heads} "
        f"mlp_ratio={cfg.mlp_ratio} positions={cfg.positions} "
        f"({_human_count(info.num_parameters)} parameters)",
        f"schedule:   {cfg.schedule}"
        + (f" (power {cfg.schedule_power:g})" if cfg.schedule == "polynomial" else ""),
        f"file:       {_human_size(info.file_size)}, format version {info.format_version}",
    ]
    if cfg.permutation is not None:
        lines.append("shuffling:  token ids permuted before encoding (Prime-v2)")
    bound = metric_summary(info.card)
    if bound:
        lines.append(f"metric:     {bound}")
    lines.append("card:")
    for key in sorted(info.card):
        lines.append(f"  {key}: {_short(info.card[key])}")
    return "\n".join(lines)


def metric_summary(card: dict[str, Any]) -> str:
    """The card's valid bound as one line (``""`` when the card has none)."""
    metrics = card.get("metrics")
    bound = metrics.get("valid_bound") if isinstance(metrics, dict) else None
    if not isinstance(bound, dict) or "bits_per_dim" not in bound:
        return ""
    text = f"valid bound {bound['bits_per_dim']:.4g}"
    if isinstance(bound.get("stderr_bits_per_dim"), (int, float)):
        text += f" +- {bound['stderr_bits_per_dim']:.2g}"
    text += " bits/dim"
    if isinstance(bound.get("perplexity"), (int, float)):
        text += f", perplexity <= {bound['perplexity']:.4g}"
    where = [str(bound[k]) for k in ("split",) if bound.get(k)]
    if bound.get("items"):
        where.append(f"{bound['items']} items")
    return text + (f" ({', '.join(where)})" if where else "")


def _short(value: Any, limit: int = 160) -> str:
    """A card value on one line, long JSON cut (``--json`` shows everything)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- init / info / models


def _given(value: Any, default: Any) -> Any:
    """The flag's value when it was given (0 included, so the config can refuse it), else the default."""
    return default if value is None else value


def _init_config(args: argparse.Namespace) -> ModelConfig:
    d_model, n_layers, n_heads = SIZES[args.size]
    fields: dict[str, Any] = {
        "modality": args.modality,
        "num_classes": args.classes if args.classes is not None else 256,
        "ell": args.ell,
        "d_model": _given(args.d_model, d_model),
        "n_layers": _given(args.n_layers, n_layers),
        "n_heads": _given(args.n_heads, n_heads),
        "mlp_ratio": args.mlp_ratio,
        "schedule": args.schedule,
        "schedule_power": args.schedule_power,
    }
    image_flags = {"--height": args.height, "--width": args.width, "--channels": args.channels}
    if args.modality == "image":
        if args.seq_len is not None:
            raise CliError("--seq-len is for text models; image models take --height, --width, --channels")
        height = _given(args.height, 16)
        fields.update(height=height, width=_given(args.width, height), channels=_given(args.channels, 1))
    else:
        given = [flag for flag, value in image_flags.items() if value is not None]
        if given:
            raise CliError(f"{', '.join(given)} are for image models; text models take --seq-len")
        fields["seq_len"] = _given(args.seq_len, 128)
    return ModelConfig(**fields)


def _output_path(args: argparse.Namespace) -> Path:
    from engine.library import MODEL_SUFFIX, user_models_dir

    if args.name is not None:
        if not args.name or any(ch in args.name for ch in "/\\") or args.name.startswith("."):
            raise CliError(f"--name {args.name!r} is not a valid model name (no slashes, no leading dot)")
        target = user_models_dir() / f"{args.name}{MODEL_SUFFIX}"
    else:
        target = Path(args.out).expanduser()
        if target.suffix != MODEL_SUFFIX:
            raise CliError(f"--out must end in {MODEL_SUFFIX}, got {str(target)!r}")
    if target.exists() and not args.force:
        raise CliError(f"{target} already exists; pass --force to overwrite it")
    return target


def cmd_init(args: argparse.Namespace) -> int:
    """``prime init``: save a randomly initialised model."""
    import torch

    from engine.models import PrimeModel

    cfg = _init_config(args)
    target = _output_path(args)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = PrimeModel(cfg)
    card = {
        "description": args.description or "randomly initialised, untrained",
        "dataset": None,
        "steps": 0,
        "metrics": {},
        "parent": None,
        "init_seed": args.seed,
        "size": args.size,
    }
    save_model(target, model, card)
    info = read_model_info(target)
    emit(args, info.to_dict(), f"created {target}\n{format_info(info)}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """``prime info MODEL``: what a model file says about itself."""
    from engine.library import resolve_model

    info = read_model_info(resolve_model(args.model))
    if args.check:
        from engine.checkpoints import load_model

        load_model(info.path)  # validates every tensor; raises ModelFileError
    emit(args, info.to_dict(), format_info(info))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """``prime models``: bundled and user models (broken files listed with their error)."""
    from engine.library import bundled_models_dir, list_models, user_models_dir

    entries = list_models()
    payload = {
        "bundled_dir": str(bundled_models_dir()),
        "user_dir": str(user_models_dir()),
        "models": [entry.to_dict() for entry in entries],
    }
    rows = [("NAME", "WHERE", "MODEL", "PARAMS", "SIZE", "TRAINING")]
    for entry in entries:
        where = "bundled" if entry.bundled else "user"
        if entry.info is None:
            rows.append((entry.name, where, f"BROKEN: {entry.error}", "", "", ""))
            continue
        info = entry.info
        rows.append(
            (
                entry.name,
                where,
                describe_config(info.config),
                _human_count(info.num_parameters),
                _human_size(info.file_size),
                training_summary(info.card),
            )
        )
    if len(rows) == 1:
        text = f"no models yet; create one with 'prime init' (user models live in {user_models_dir()})"
    else:
        text = table(rows)
    emit(args, payload, text)
    return 0


def training_summary(card: dict[str, Any]) -> str:
    """``untrained`` or ``N steps`` from a model card (training cards nest it under ``training``)."""
    training = card.get("training")
    steps = training.get("steps") if isinstance(training, dict) else card.get("steps")
    if not steps:
        return "untrained" if not card.get("metrics") else "trained"
    return f"{steps} steps"


def cmd_import(args: argparse.Namespace) -> int:
    """``prime import PATH``: validate a model file and copy it into the user library."""
    from engine.library import import_model

    target = import_model(args.path, name=args.name)
    info = read_model_info(target)
    emit(args, info.to_dict(), f"imported {args.path} as {info.name!r} ({target})")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    """``prime remove NAME``: delete a user model."""
    from engine.library import remove_model

    path = remove_model(args.name)
    emit(args, {"removed": args.name, "path": str(path)}, f"removed {args.name} ({path})")
    return 0


def table(rows: Sequence[Sequence[object]]) -> str:
    """Plain-text table, first row the header; columns left-aligned, numbers right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]

    def fmt(row: list[str]) -> str:
        parts = []
        for i, cell in enumerate(row):
            numeric = cell.replace(".", "", 1).replace("-", "", 1).replace("%", "").isdigit()
            parts.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    return "\n".join(fmt(row) for row in cells)


# --------------------------------------------------------------------------- parser


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object (machine-readable)")
    common.add_argument("--debug", action="store_true", help="show the traceback on errors")
    return common


def _add_init(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("init", parents=[common], help="create a randomly initialised model")
    p.add_argument("--modality", choices=MODALITIES, default="image")
    p.add_argument("--size", choices=sorted(SIZES), default="small", help="backbone size preset")
    p.add_argument("--classes", type=int, help="C: levels per token (default 256; text must be 256)")
    p.add_argument("--ell", type=int, default=1, help="sub-tokens per token (1 = plain MDM)")
    p.add_argument("--height", type=int, help="image height (default 16)")
    p.add_argument("--width", type=int, help="image width (default: the height)")
    p.add_argument("--channels", type=int, help="1 (grey) or 3 (RGB); default 1")
    p.add_argument("--seq-len", type=int, help="text length in byte tokens (default 128)")
    p.add_argument("--d-model", type=int, help="override the preset's width")
    p.add_argument("--n-layers", type=int, help="override the preset's depth")
    p.add_argument("--n-heads", type=int, help="override the preset's attention heads")
    p.add_argument("--mlp-ratio", type=int, default=4)
    p.add_argument("--schedule", choices=SCHEDULES, default="linear")
    p.add_argument("--schedule-power", type=float, default=3.0, help="exponent of the polynomial schedule")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    p.add_argument("--description", help="free text stored in the model card")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="model file to write (.safetensors)")
    where.add_argument("--name", help="save into your model library under this name")
    p.set_defaults(run=cmd_init)


def _add_library(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("info", parents=[common], help="show a model's config and card")
    p.add_argument("model", help="library name or path of a .safetensors model")
    p.add_argument("--check", action="store_true", help="also load and validate every weight")
    p.set_defaults(run=cmd_info)
    p = sub.add_parser("models", parents=[common], help="list bundled and user models")
    p.set_defaults(run=cmd_models)
    p = sub.add_parser("import", parents=[common], help="copy a model file into your library")
    p.add_argument("path", help="a .safetensors model file")
    p.add_argument("--name", help="library name (default: the file name)")
    p.set_defaults(run=cmd_import)
    p = sub.add_parser("remove", parents=[common], help="delete a model from your library")
    p.add_argument("name", help="library name of a user model")
    p.set_defaults(run=cmd_remove)


def _add_training(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``train`` and ``eval`` from :mod:`engine.training.cli` once that module exists."""
    try:
        training_cli = importlib.import_module("engine.training.cli")
    except ModuleNotFoundError as exc:
        if exc.name in ("engine.training.cli", "engine.training"):
            return  # not there yet: the CLI works without these commands
        raise
    hooks: list[tuple[str, Callable[..., Any], Callable[[argparse.Namespace], int]]] = [
        ("train", training_cli.add_train_parser, training_cli.run_train),
        ("eval", training_cli.add_eval_parser, training_cli.run_eval),
    ]
    for name, add_parser, run in hooks:
        add_parser(sub)
        parser = sub.choices.get(name)
        if parser is None:
            continue
        for flag, action in (("--json", "JSON output"), ("--debug", "show the traceback on errors")):
            if flag not in parser._option_string_actions:
                parser.add_argument(flag, action="store_true", help=action)
        parser.set_defaults(run=run)


def build_parser() -> argparse.ArgumentParser:
    """The full ``prime`` argument parser."""
    from engine import bench, cli_generate

    parser = _Parser(
        prog="prime",
        description="Prime Studio engine: discrete diffusion with partial masking (Prime).",
        epilog="MODEL is a library name (see 'prime models') or a path to a .safetensors file.",
    )
    parser.add_argument("--version", action="version", version=f"prime {app_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    common = _common()
    _add_init(sub, common)
    _add_library(sub, common)
    cli_generate.add_parser(sub, common)
    _add_training(sub, common)
    bench.add_parser(sub, common)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (CliError, ValueError, OSError)):
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
            text = f"{exc.filename}: {text}"
        return text
    return f"{type(exc).__name__}: {text} (unexpected; rerun with --debug for the traceback)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``prime``; returns the exit status (0 ok, 2 error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    for stream in (sys.stdout, sys.stderr):  # generated text on a console that cannot show it
        with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (Exception, ModelFileError) as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
