"""``prime train`` and ``prime eval``, registered by :mod:`engine.cli`.

``prime train --data PATH --out MODEL`` trains a new model (``--modality/--size/...``; the
modality and image channels are guessed from the data when not given) or fine-tunes one
(``--from MODEL``: its config decides the preprocessing). A progress bar with ETA goes to
stderr; ``--json`` prints one JSON object per event on stdout instead. Ctrl-C once cancels
cleanly (a checkpoint is written; ``--resume`` continues), twice aborts. ``--dry-run`` prints the
pre-flight report and trains nothing. ``--recipe NAME`` retrains a bundled model from
:mod:`engine.recipes` (flags override its settings). Under ``torchrun`` only rank 0 prints.

``prime eval --model MODEL --data PATH`` prints the valid bound with its standard error.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from engine.api import CancelToken
from engine.config import ModelConfig
from engine.data import DataError, preflight
from engine.data.files import scan
from engine.training.config import LR_SCHEDULES, TRAIN_OBJECTIVES, TrainConfig
from engine.training.events import TrainSummary
from engine.training.progress import Progress

DEFAULT_ELL = 2  # Prime's recommended setting for 8-bit data (PRIME.md §6: l = 2 beat MDM on CIFAR-10)


def _sizes() -> dict[str, tuple[int, int, int]]:
    from engine.cli import SIZES

    return SIZES


def add_train_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``prime train``."""
    p = subparsers.add_parser("train", help="train or fine-tune a model on a folder of images or text")
    p.add_argument("--data", help="image folder, or a .txt/.md file or folder (not with --recipe)")
    p.add_argument("--out", required=True, help="model file to write (.safetensors appended if missing)")
    p.add_argument(
        "--from", dest="parent", metavar="MODEL", help="fine-tune this model (library name or path)"
    )
    p.add_argument("--recipe", help="retrain a bundled model from its recipe (its data, model, settings)")
    g = p.add_argument_group("new model (ignored with --from)")
    g.add_argument("--modality", choices=("image", "text"), help="default: guessed from the data")
    g.add_argument("--size", default="small", help="backbone preset: tiny, small or base")
    g.add_argument("--height", type=int, default=32, help="image height (default 32)")
    g.add_argument("--width", type=int, help="image width (default: the height)")
    g.add_argument("--channels", type=int, choices=(1, 3), help="1 grey or 3 RGB (default: from the data)")
    g.add_argument("--levels", type=int, default=256, help="image levels C (default 256)")
    g.add_argument("--seq-len", type=int, default=128, help="text bytes per sequence (default 128)")
    g.add_argument(
        "--ell", type=int, default=DEFAULT_ELL, help=f"sub-tokens per token (default {DEFAULT_ELL})"
    )
    g.add_argument("--d-model", type=int, help="override the preset's width")
    g.add_argument("--n-layers", type=int, help="override the preset's depth")
    g.add_argument("--n-heads", type=int, help="override the preset's heads")
    t = p.add_argument_group("training")
    t.add_argument("--config", help="JSON file of TrainConfig settings (flags below override it)")
    t.add_argument("--steps", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--warmup", type=int)
    t.add_argument("--lr-schedule", choices=LR_SCHEDULES)
    t.add_argument(
        "--objective", choices=TRAIN_OBJECTIVES, help="training loss (validation is always the bound)"
    )
    t.add_argument("--ema", type=float, help="EMA decay, 0 = off")
    t.add_argument("--grad-accum", type=int)
    t.add_argument("--grad-clip", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--checkpoint-every", type=int)
    t.add_argument("--eval-every", type=int)
    t.add_argument("--eval-batches", type=int)
    t.add_argument("--preview-every", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    t.add_argument("--bf16", choices=("auto", "on", "off"), help="bf16 autocast (auto: on for CUDA)")
    t.add_argument("--val-fraction", type=float)
    t.add_argument("--fit", choices=("crop", "pad"), help="image resize: centre-crop or pad")
    t.add_argument("--text-mode", choices=("pad", "pack"), help="text sequences: per document or packed")
    t.add_argument("--max-items", type=int, help="use at most this many items")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint beside --out")
    p.add_argument("--force", action="store_true", help="overwrite an existing model file")
    p.add_argument("--dry-run", action="store_true", help="print the pre-flight report; train nothing")
    p.add_argument(
        "--preview", metavar="PNG", help="with --dry-run on images: save a grid of preprocessed items"
    )
    p.add_argument(
        "--preview-count",
        type=int,
        default=16,
        help="preview items: the image grid (default 16); text shows at most 6",
    )
    p.add_argument("--json", action="store_true", help="JSON lines of events on stdout")
    p.add_argument("--debug", action="store_true", help="show the traceback on errors")
    p.set_defaults(run=run_train)
    return p


def add_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``prime eval``."""
    p = subparsers.add_parser("eval", help="valid bound (bits/dim, perplexity) of a model on data")
    p.add_argument("--model", required=True, help="library name or path of a model")
    p.add_argument("--data", required=True, help="image folder, or a .txt/.md file or folder")
    p.add_argument(
        "--split", choices=("all", "validation"), default="all", help="items to score (default all)"
    )
    p.add_argument("--val-fraction", type=float, default=0.1, help="with --split validation")
    p.add_argument("--seed", type=int, default=0, help="seed of t, the noise and the split")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-items", type=int, default=0, help="score at most this many items (0 = all)")
    p.add_argument("--passes", type=int, default=1, help="Monte-Carlo passes over the items")
    p.add_argument("--fit", choices=("crop", "pad"), default="crop")
    p.add_argument("--text-mode", choices=("pad", "pack"), default="pad")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--debug", action="store_true", help="show the traceback on errors")
    p.set_defaults(run=run_eval)
    return p


# --------------------------------------------------------------------------- configs from flags

_FLAG_KEYS = (
    "steps",
    "batch_size",
    "lr",
    "warmup",
    "lr_schedule",
    "objective",
    "ema",
    "grad_accum",
    "grad_clip",
    "weight_decay",
    "checkpoint_every",
    "eval_every",
    "eval_batches",
    "preview_every",
    "seed",
    "device",
    "val_fraction",
    "fit",
    "text_mode",
    "max_items",
)


def train_config_from_args(args: argparse.Namespace, start: TrainConfig | None = None) -> TrainConfig:
    """TrainConfig from ``start`` (a recipe's) or ``--config`` (if any), overridden by explicit flags."""
    base: dict[str, Any] = start.to_dict() if start is not None else {}
    if args.config:
        try:
            base = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read --config {args.config}: {exc}") from None
    for key in _FLAG_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            base[key] = value
    if args.bf16 is not None:
        base["bf16"] = {"auto": None, "on": True, "off": False}[args.bf16]
    return TrainConfig.from_dict(base)


def _guess_modality(path: str) -> str:
    s = scan(path)
    return "text" if len(s.texts) > len(s.images) else "image"


def _guess_channels(path: str, limit: int = 32) -> int:
    """3 if any of the first ``limit`` images is in colour (read from headers only), else 1."""
    s = scan(path)
    for rel in s.images[:limit]:
        try:
            with Image.open(s.full(rel)) as im:
                if im.mode not in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
                    return 3
        except Exception:  # unreadable files are reported by the pre-flight check
            continue
    return 1


def model_config_from_args(args: argparse.Namespace) -> ModelConfig:
    """A new model's config from the flags (modality and channels guessed from --data if absent)."""
    sizes = _sizes()
    if args.size not in sizes:
        raise ValueError(f"--size must be one of {', '.join(sorted(sizes))}, got {args.size!r}")
    d_model, n_layers, n_heads = sizes[args.size]
    modality = args.modality or _guess_modality(args.data)
    common = {
        "ell": args.ell,
        "d_model": args.d_model or d_model,
        "n_layers": args.n_layers or n_layers,
        "n_heads": args.n_heads or n_heads,
    }
    if modality == "text":
        return ModelConfig(modality="text", num_classes=256, seq_len=args.seq_len, **common)
    return ModelConfig(
        modality="image",
        num_classes=args.levels,
        height=args.height,
        width=args.width or args.height,
        channels=args.channels or _guess_channels(args.data),
        **common,
    )


def _resolve_model_path(name: str) -> Path:
    """A model file path: as given, with ``.safetensors`` appended (as ``--out`` does), or by library name."""
    from engine.library import resolve_model
    from engine.training.checkpoint import model_path_for

    for candidate in (Path(name).expanduser(), model_path_for(name)):
        if candidate.is_file():
            return candidate
    return resolve_model(name)


# --------------------------------------------------------------------------- commands


def run_train(args: argparse.Namespace) -> int:
    """``prime train``; returns 0 (done), 130 (cancelled with a checkpoint); errors raise ValueError."""
    from engine.training.loop import iter_train

    card: dict[str, Any] | None = None
    if args.recipe:
        from engine.recipes import get_recipe

        if args.data or args.parent:
            raise ValueError("--recipe brings its own data and model; drop --data and --from")
        recipe = get_recipe(args.recipe)
        cfg = train_config_from_args(args, recipe.train)
        mcfg = model = recipe.model
        data: Any = recipe.data()
        card = recipe.card()
    else:
        if not args.data:
            raise ValueError("--data is required (a folder of images, or .txt/.md text), or use --recipe")
        data = args.data
        cfg = train_config_from_args(args)
        if args.parent:
            from engine.checkpoints import read_model_info

            model = _resolve_model_path(args.parent)
            mcfg = read_model_info(model).config
        else:
            mcfg = model = model_config_from_args(args)
    rank = int(os.environ.get("RANK", "0"))
    if args.dry_run:
        if args.recipe:
            raise ValueError("--dry-run checks a --data path; a recipe's data is built in code")
        shown = args.preview_count if mcfg.modality == "image" else min(args.preview_count, 6)
        report = preflight(args.data, mcfg, cfg.data_options(), preview=max(1, shown))
        if args.preview and report.ok:
            _save_preview(args.preview, report, mcfg)
        if args.json:
            print(json.dumps({"kind": "preflight", **report.to_dict()}))
        else:
            print(report.summary())
        if not report.ok:
            raise DataError(report.problem)
        return 0
    cancel = CancelToken()
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        if rank == 0:
            print("\ncancelling after this step (Ctrl-C again to abort)...", file=sys.stderr)

    show = Progress()
    gen = iter_train(model, cfg, data, args.out, cancel, resume=args.resume, overwrite=args.force, card=card)
    summary: TrainSummary | None = None
    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        pass
    try:
        while True:
            try:
                ev = next(gen)
            except StopIteration as stop:
                summary = stop.value
                break
            if rank != 0:
                continue
            if args.json:
                print(json.dumps(ev.to_dict()), flush=True)
            else:
                show(ev)
    finally:
        gen.close()
        try:
            signal.signal(signal.SIGINT, previous)
        except ValueError:
            pass
    assert summary is not None
    if rank == 0 and args.json:
        print(json.dumps({"kind": "summary", **summary.to_dict()}), flush=True)
    return 130 if summary.cancelled else 0


def _save_preview(path: str, report: Any, config: ModelConfig) -> None:
    """A PNG grid of the report's preprocessed items (images only)."""
    if config.modality != "image":
        raise ValueError("--preview draws images; for text the report prints the preview")
    from engine.convert import tokens_to_images
    from engine.media import auto_scale, grid, save_png

    images = tokens_to_images(report.preview_tokens, config)  # (k, H, W, ch)
    scale = auto_scale(config.height, config.width)
    save_png(path, grid(images, scale=scale), {"prime-preflight": ", ".join(report.preview_sources)})


def _fmt(value: float) -> str:
    return f"{value:.4f}" if value == value and abs(value) != float("inf") else "n/a"


def run_eval(args: argparse.Namespace) -> int:
    """``prime eval``: the valid bound of a model on a data path."""
    from engine.checkpoints import load_model
    from engine.data import DataOptions
    from engine.device import pick_device
    from engine.training.evaluate import evaluate

    path = _resolve_model_path(args.model)
    model, info = load_model(path, device=pick_device(args.device))
    val_fraction = args.val_fraction if args.split == "validation" else 0.0
    options = DataOptions(fit=args.fit, text_mode=args.text_mode, val_fraction=val_fraction, seed=args.seed)
    report = preflight(args.data, info.config, options, preview=0)
    data = report.require_usable()
    started = time.perf_counter()
    result = evaluate(
        model,
        data,
        batch_size=args.batch_size,
        max_items=args.max_items or None,
        passes=args.passes,
        seed=args.seed,
        split="all" if args.split == "all" else "validation",
    )
    seconds = time.perf_counter() - started
    payload = {
        "model": info.name,
        "model_path": str(path),
        "data": str(args.data),
        "files_used": report.files_used,
        "files_skipped": len(report.skipped),
        "items_used": result.items,
        "seconds": seconds,
        **result.to_dict(),
    }
    if args.json:
        print(json.dumps(payload))
    else:
        se = _fmt(result.stderr_nats_per_token)
        se_bits = _fmt(result.stderr_bits_per_dim)
        print(f"model: {info.name} ({path})")
        print(f"data: {args.data}: {report.files_used} files used, {len(report.skipped)} skipped")
        print(f"items used: {result.items} ({result.split})")
        print(f"valid bound: {result.nats_per_token:.4f} ± {se} nats/token")
        print(f"             {result.bits_per_token:.4f} ± {se_bits} bits/token")
        print(f"             {result.bits_per_dim:.4f} bits/dim (per sub-pixel or byte)")
        print(f"perplexity:  <= {result.perplexity:.3f} (exp of the bound in nats/token)")
        print(f"how: {result.how}; {seconds:.1f} s")
    return 0
