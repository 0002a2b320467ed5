"""``prime init``, ``info``, ``models``, ``import``, ``remove``, ``restore``: model files and the library."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import torch

from engine.api import describe_settings, recommended_settings
from engine.cli.common import (
    EXIT_ERROR,
    CliError,
    dumps,
    emit,
    human_count,
    human_size,
    one_line,
    printable,
    resolve_model_path,
    table,
)
from engine.config import MODALITIES, SCHEDULES, SIZES, ModelConfig
from engine.files.library import (
    MODEL_SUFFIX,
    bundled_models_dir,
    import_model,
    list_models,
    list_trash,
    remove_model,
    resolve_model,
    restore_model,
    user_models_dir,
)
from engine.files.modelfile import ModelFileError, ModelInfo, load_model, read_model_info, save_model


def describe_config(cfg: ModelConfig) -> str:
    """One line about the data side of a config: modality, shape, C, ell and base."""
    if cfg.modality == "image":
        shape = f"image {cfg.height}x{cfg.width}x{cfg.channels}"
    elif cfg.tokenizer == "bpe":
        shape = f"text (bpe, {cfg.num_classes:,} entries) of {cfg.seq_len} tokens"
    else:
        shape = f"text (bytes) of {cfg.seq_len} tokens"
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
        f"({human_count(info.num_parameters)} parameters)",
        f"schedule:   {cfg.schedule}"
        + (f" (power {cfg.schedule_power:g})" if cfg.schedule == "polynomial" else ""),
        f"file:       {human_size(info.file_size)}, format version {info.format_version}",
        "checksum:   "
        + (
            f"{info.digest[:28]}... (verified by --check and on every load)"
            if info.digest
            else "none (written before checksums; the weights cannot be verified against one)"
        ),
    ]
    if cfg.permutation is not None:
        lines.append("shuffling:  token ids permuted before encoding (Prime-v2)")
    vocab = tokenizer_line(cfg)
    if vocab:
        lines.append(f"tokenizer:  {vocab}")
    bound = metric_summary(info.card)
    if bound:
        lines.append(f"metric:     {bound}")
    try:
        recommended = describe_settings(recommended_settings(info.card))
    except ValueError as exc:
        recommended = printable(_short(f"invalid, ignored ({exc})"), keep_newlines=False)
    if recommended:
        lines.append(f"sampler:    {recommended} (recommended; prime generate starts from it)")
    lines.append("card:")
    for key in sorted(info.card):
        lines.append(f"  {printable(_short(key, 60), keep_newlines=False)}: {_short(info.card[key])}")
    return "\n".join(lines)


def tokenizer_line(cfg: ModelConfig) -> str:
    """A text model's tokenizer in words (``""`` for images)."""
    if cfg.modality != "text":
        return ""
    vocab = cfg.vocabulary
    if cfg.tokenizer != "bpe" or vocab is None:
        return "bytes (every UTF-8 byte is one token, C = 256)"
    text = f"byte-level BPE, {vocab.vocab_size:,} entries (checksum {vocab.digest})"
    bpt = getattr(vocab, "trained_bytes_per_token", None)
    if bpt:
        text += f", {bpt:.2f} bytes per token on the text it was learned from"
    return text


def _number(value: Any) -> float | None:
    """A card value usable as a number (a real int or float, finite), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def metric_summary(card: dict[str, Any]) -> str:
    """The card's valid bound as one line (``""`` when the card has none)."""
    metrics = card.get("metrics")
    bound = metrics.get("valid_bound") if isinstance(metrics, dict) else None
    if not isinstance(bound, dict) or _number(bound.get("bits_per_dim")) is None:
        return ""  # a card value of another type is shown as it is under "card:"
    text = f"valid bound {_number(bound['bits_per_dim']):.4g}"
    if _number(bound.get("stderr_bits_per_dim")) is not None:
        text += f" +- {_number(bound['stderr_bits_per_dim']):.2g}"
    per_byte = _number(bound.get("bits_per_byte"))
    if bound.get("modality") == "text" or per_byte is not None:
        text += " bits/token"
        if per_byte is not None:
            text += f", {per_byte:.4g}"
            if _number(bound.get("stderr_bits_per_byte")) is not None:
                text += f" +- {_number(bound['stderr_bits_per_byte']):.2g}"
            text += " bits/byte"
        per_token = " per token"
    else:
        text += " bits/dim"
        per_token = ""
    if _number(bound.get("perplexity")) is not None:
        text += f", perplexity{per_token} <= {_number(bound['perplexity']):.4g}"
    where = [_short(bound[k], 40) for k in ("split",) if bound.get(k)]
    if bound.get("items"):
        where.append(f"{_short(bound['items'], 20)} items")
    return printable(text + (f" ({', '.join(where)})" if where else ""), keep_newlines=False)


def _short(value: Any, limit: int = 160) -> str:
    """A card value on one line, long JSON cut, control characters removed (``--json`` shows everything)."""
    text = value if isinstance(value, str) else dumps(value)
    text = printable(text, keep_newlines=False)
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


CHECK_ATTENTION_BYTES = 256 << 20  # prime info --check runs a forward pass only below this attention size


def check_model_file(path: Path) -> dict[str, Any]:
    """Load ``path`` fully and run one forward pass; what was checked, as ``{"ok": True, "checked": [...]}``.

    :func:`~engine.files.modelfile.load_model` checks the header (format, version, config, tensor
    names and shapes), reads every tensor, compares names, shapes and kinds with a freshly built
    model, refuses NaN or infinite weights and verifies the weights' checksum; any failure raises
    :class:`~engine.files.modelfile.ModelFileError` naming it. Here a fully masked input then goes
    through the network, whose logits must have the expected shape and be finite.
    """
    import torch

    model, info = load_model(path)
    cfg = info.config
    tensors = len(model.state_dict())
    checked = [
        f"format {info.format_version} header and config",
        f"all {tensors} tensors present, none extra, each of the shape and kind the config gives",
        "every weight finite (no NaN or infinity)",
        "weights match their blake2b-256 checksum"
        if info.digest
        else "no checksum to verify (file written before checksums)",
        f"the model builds and loads the weights ({info.num_parameters:,} parameters)",
    ]
    L, C = cfg.seq_length, cfg.num_classes
    if cfg.n_heads * L * L * 4 > CHECK_ATTENTION_BYTES:  # bounded time and memory, whatever the file says
        checked.append(
            f"no forward pass: its attention scores ({cfg.n_heads} heads x {L:,}^2 tokens) would need more "
            f"than the check's {CHECK_ATTENTION_BYTES >> 20} MiB; 'prime generate --num 1' runs one"
        )
        return {"ok": True, "checked": checked}
    try:
        with torch.no_grad():
            logits = model(torch.full((1, L, cfg.ell), model.codec.mask, dtype=torch.int64))
    except (RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{path}: a forward pass failed: {' '.join(str(exc).split())[:200]}") from None
    if tuple(logits.shape) != (1, L, C):
        raise ModelFileError(
            f"{path}: a forward pass gave logits of shape {tuple(logits.shape)}, not (1, {L}, {C})"
        )
    if not bool(torch.isfinite(logits).all()):
        raise ModelFileError(
            f"{path}: a forward pass on a fully masked input gave non-finite (NaN or inf) logits"
        )
    checked.append(f"a forward pass on a fully masked input gives finite logits of shape (1, {L}, {C})")
    return {"ok": True, "checked": checked}


def cmd_info(args: argparse.Namespace) -> int:
    """``prime info MODEL``: what a model file says about itself; ``--check`` validates it fully."""
    info = read_model_info(resolve_model(args.model))
    payload, text = info.to_dict(), format_info(info)
    if args.check:
        try:
            check = check_model_file(info.path)
        except ModelFileError as exc:
            if not args.json:
                raise  # one line "error: ...", exit status 2
            payload["check"] = {"ok": False, "error": one_line(exc)}  # the one JSON object says why
            emit(args, payload, "")
            print(f"error: {printable(one_line(exc), keep_newlines=False)}", file=sys.stderr)
            return EXIT_ERROR
        payload["check"] = check
        text += "\ncheck:      passed; checked:\n" + "\n".join(f"  - {item}" for item in check["checked"])
    emit(args, payload, text)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """``prime models``: bundled and user models (broken files listed with their error)."""
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
                human_count(info.num_parameters),
                human_size(info.file_size),
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
    return f"{_short(steps, 24)} steps"


def cmd_import(args: argparse.Namespace) -> int:
    """``prime import PATH``: validate a model file and copy it into the user library."""
    target = import_model(args.path, name=args.name)
    info = read_model_info(target)
    emit(args, info.to_dict(), f"imported {args.path} as {info.name!r} ({target})")
    return 0


STORE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def cmd_convert(args: argparse.Namespace) -> int:
    """``prime convert MODEL --out PATH``: the same model with its weights stored in another type."""
    source = resolve_model_path(args.model)
    model, info = load_model(source)
    out = Path(args.out)
    if out.suffix != ".safetensors":
        out = out.with_name(out.name + ".safetensors")
    if out.exists() and not args.force:
        raise ValueError(f"{out} already exists; choose another --out or pass --force")
    card = dict(info.card)
    card["stored_dtype"] = args.dtype
    card["converted_from"] = {"path": str(source), "weights_digest": info.digest}
    save_model(out, model, card, dtype=STORE_DTYPES[args.dtype])
    new = read_model_info(out)
    emit(
        args,
        {"path": str(out), "dtype": args.dtype, "file_size": new.file_size, "was": info.file_size},
        f"wrote {out}: weights stored as {args.dtype}, {new.file_size / 1e6:.1f} MB "
        f"(was {info.file_size / 1e6:.1f} MB); they load as float32",
    )
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    """``prime remove NAME``: move a user model to the trash (``prime restore NAME`` undoes it)."""
    path = remove_model(args.name)
    emit(
        args,
        {"removed": args.name, "trash_path": str(path)},
        f"moved {args.name} to the trash ({path}); undo with: prime restore {args.name}",
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """``prime restore NAME``: put a removed model back; without NAME, list the trash."""
    if args.name is None:
        entries = list_trash()
        rows = [("NAME", "REMOVED", "FILE")] + [(e.name, e.removed, str(e.path)) for e in entries]
        text = table(rows) if entries else "the trash is empty"
        emit(args, {"trash": [e.to_dict() for e in entries]}, text)
        return 0
    path = restore_model(args.name)
    emit(args, {"restored": args.name, "path": str(path)}, f"restored {args.name} ({path})")
    return 0


# --------------------------------------------------------------------------- parser


def add_init_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``init`` on the ``prime`` sub-command parser."""
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


def add_library_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``info``, ``models``, ``import``, ``remove`` and ``restore``."""
    p = sub.add_parser("info", parents=[common], help="show a model's config and card")
    p.add_argument("model", help="library name or path of a .safetensors model")
    p.add_argument(
        "--check",
        action="store_true",
        help="also load the whole file and say what was checked: every tensor's presence, shape and "
        "kind, finite weights, the weights' checksum, that the model builds, and a forward pass "
        '(with --json: a "check" object)',
    )
    p.set_defaults(run=cmd_info)
    p = sub.add_parser("models", parents=[common], help="list bundled and user models")
    p.set_defaults(run=cmd_models)
    p = sub.add_parser("import", parents=[common], help="copy a model file into your library")
    p.add_argument("path", help="a .safetensors model file")
    p.add_argument("--name", help="library name (default: the file name)")
    p.set_defaults(run=cmd_import)
    p = sub.add_parser(
        "convert",
        parents=[common],
        help="re-save a model with its weights in another type (float16 halves it)",
    )
    p.add_argument("model", help="library name or model file")
    p.add_argument("--out", required=True, help="the new model file")
    p.add_argument(
        "--dtype", choices=tuple(STORE_DTYPES), default="float16", help="storage type (default float16)"
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(run=cmd_convert)
    p = sub.add_parser("remove", parents=[common], help="move a model from your library to the trash")
    p.add_argument("name", help="library name of a user model")
    p.set_defaults(run=cmd_remove)
    p = sub.add_parser("restore", parents=[common], help="put a removed model back (no NAME: list the trash)")
    p.add_argument("name", nargs="?", help="library name of a model in the trash (the newest removal wins)")
    p.set_defaults(run=cmd_restore)
