"""``prime train``: train or fine-tune a model on a folder of images or text, or retrain a recipe.

``prime train --data PATH --out MODEL`` trains a new model (``--modality/--size/...``; the
modality and image channels are guessed from the data when not given) or fine-tunes one
(``--from MODEL``: its config decides the preprocessing). A progress bar with ETA goes to
stderr; ``--json`` prints one JSON object per event on stdout instead. Ctrl-C once cancels
cleanly (a checkpoint is written; ``--resume`` continues), twice aborts. ``--dry-run`` prints the
pre-flight report and trains nothing (with ``--recipe``, the report of the recipe's data, which
is built in code). ``--recipe NAME`` retrains a bundled model from :mod:`engine.training.recipes`
(flags override its settings). Under ``torchrun`` only rank 0 prints.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from engine.api import CancelToken
from engine.cli.common import resolve_model_path, set_cpu_threads
from engine.config import SIZES, ModelConfig
from engine.data import DataError, PreflightReport, TokenData, learn_vocabulary, preflight, printable
from engine.data.arrays import read_arrays
from engine.data.collect import vocabulary_stats
from engine.data.files import Skipped, open_regular, scan
from engine.data.images import DEFAULT_MAX_PIXELS
from engine.data.quality import flat_mask
from engine.data.text import tokens_to_str
from engine.files.convert import tokens_to_images
from engine.files.media import auto_scale, grid, save_png
from engine.files.modelfile import read_model_info
from engine.tokenizer import BYTES
from engine.training.config import LR_SCHEDULES, TRAIN_OBJECTIVES, TrainConfig
from engine.training.events import TrainSummary
from engine.training.loop import iter_train
from engine.training.progress import Progress
from engine.training.recipes import RECIPES, Recipe, get_recipe

DEFAULT_ELL = 2  # Prime's recommended setting for 8-bit data (ell = 2 beat MDM on CIFAR-10 in the paper)


def _recipes_epilog() -> str:
    """The ``recipes:`` block of ``prime train --help``: every recipe name with what it makes."""
    lines = ["recipes (--recipe NAME retrains a bundled model; --dry-run --recipe NAME checks its data):"]
    width = max(len(name) for name in RECIPES)
    lines += [f"  {name:<{width}}  {recipe.summary}" for name, recipe in RECIPES.items()]
    return "\n".join(lines)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``prime train``."""
    p = subparsers.add_parser(
        "train",
        help="train or fine-tune a model on a folder of images or text",
        epilog=_recipes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data",
        help="a folder or file of images, .npy/.npz/IDX arrays, or text (any name; judged by content); "
        "not with --recipe",
    )
    p.add_argument("--out", required=True, help="model file to write (.safetensors appended if missing)")
    p.add_argument(
        "--from", dest="parent", metavar="MODEL", help="fine-tune this model (library name or path)"
    )
    p.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        metavar="NAME",
        help=f"retrain a bundled model from its recipe (its data, model, settings): {', '.join(RECIPES)}",
    )
    g = p.add_argument_group("new model (ignored with --from)")
    g.add_argument("--modality", choices=("image", "text"), help="default: guessed from the data")
    g.add_argument("--size", default="small", help="backbone preset: tiny, small or base")
    g.add_argument("--height", type=int, default=32, help="image height (default 32)")
    g.add_argument("--width", type=int, help="image width (default: the height)")
    g.add_argument("--channels", type=int, choices=(1, 3), help="1 grey or 3 RGB (default: from the data)")
    g.add_argument("--levels", type=int, default=256, help="image levels C (default 256)")
    g.add_argument("--seq-len", type=int, default=128, help="text tokens per sequence (default 128)")
    g.add_argument(
        "--tokenizer",
        choices=("bytes", "bpe"),
        default="bytes",
        help="text tokens: raw bytes (C = 256) or a byte-level BPE vocabulary learned from the "
        "training split (C = --vocab); fine-tuning keeps the parent's",
    )
    g.add_argument(
        "--vocab",
        type=int,
        default=4096,
        help="--tokenizer bpe: vocabulary entries to learn (257..65536, default 4096)",
    )
    g.add_argument(
        "--shuffle-ids",
        type=int,
        metavar="SEED",
        help="Prime-v2 index shuffling: permute the token ids with this seed before they are split "
        "into digits (saved with the model; default: no shuffling)",
    )
    g.add_argument(
        "--ell",
        type=int,
        help=f"sub-tokens per token (default {DEFAULT_ELL}; with --recipe: the recipe's, which this "
        "overrides)",
    )
    g.add_argument(
        "--dropout",
        type=float,
        help="dropout in the backbone, in [0, 1) (default 0.0; with --recipe: the recipe's, which this "
        "overrides)",
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
    t.add_argument(
        "--augment-p",
        type=float,
        metavar="P",
        help="image models: shift each training image by one pixel with probability P, telling the "
        "model the shift so samples stay centred (a new model gets the shift conditioning; default 0)",
    )
    t.add_argument("--grad-accum", type=int)
    t.add_argument("--grad-clip", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--checkpoint-every", type=int)
    t.add_argument("--eval-every", type=int)
    t.add_argument("--eval-batches", type=int)
    t.add_argument("--preview-every", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    t.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        help="bf16 autocast (auto: only where this machine trains faster with it; measured once)",
    )
    t.add_argument("--val-fraction", type=float)
    t.add_argument("--fit", choices=("crop", "pad"), help="image resize: centre-crop or pad")
    t.add_argument("--text-mode", choices=("pad", "pack"), help="text sequences: per document or packed")
    t.add_argument("--max-items", type=int, help="use at most this many items")
    d = p.add_argument_group("data")
    d.add_argument(
        "--background",
        metavar="white|black|#rrggbb",
        help="what transparent pixels are composited onto (default white)",
    )
    d.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help="use only files whose path or name matches (repeatable, e.g. --include '*.png')",
    )
    d.add_argument(
        "--exclude", action="append", metavar="GLOB", help="leave out files that match (repeatable)"
    )
    d.add_argument(
        "--column", metavar="NAME", help="text from CSV/TSV/JSONL files: the column (or key) to use"
    )
    d.add_argument(
        "--drop-flat",
        action="store_true",
        default=None,
        help="leave out items that are one flat colour (or blank text) after preprocessing",
    )
    p.add_argument("--resume", action="store_true", help="continue the checkpoint beside --out")
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: the cores the load average leaves free; PRIME_THREADS overrides)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing model file")
    p.add_argument("--dry-run", action="store_true", help="print the pre-flight report; train nothing")
    p.add_argument(
        "--preview", metavar="PNG", help="with --dry-run on images: save a grid of preprocessed items"
    )
    p.add_argument(
        "--preview-count",
        type=int,
        default=16,
        help="preview items in the report and the --preview grid (default 16)",
    )
    p.add_argument("--json", action="store_true", help="JSON lines of events on stdout")
    p.add_argument("--debug", action="store_true", help="show the traceback on errors")
    p.set_defaults(run=run_train)
    return p


# --------------------------------------------------------------------------- configs from flags

# the training flags that change what a recipe's run learns (a variant's card names them) ...
_LEARNING_KEYS = (
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
    "seed",
    "augment_p",
)
# ... and all the flags that override a TrainConfig field: the others say how often to evaluate,
# preview or checkpoint, where to run, and how to read the data
_FLAG_KEYS = (
    *_LEARNING_KEYS,
    "checkpoint_every",
    "eval_every",
    "eval_batches",
    "preview_every",
    "device",
    "val_fraction",
    "fit",
    "text_mode",
    "max_items",
    "background",
    "include",
    "exclude",
    "column",
    "drop_flat",
)


def _flag_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


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


def _scan(args: argparse.Namespace) -> Any:
    return scan(args.data, tuple(args.include or ()), tuple(args.exclude or ()))


def _guess_modality(args: argparse.Namespace) -> str:
    s = _scan(args)
    return "text" if len(s.texts) > len(s.images) + len(s.arrays) else "image"


def _guess_channels(args: argparse.Namespace, limit: int = 32) -> int:
    """3 if any of the first ``limit`` images (headers only) or the first array is in colour, else 1.

    Only regular files are opened (a named pipe in the folder would block ``Image.open``).
    """
    s = _scan(args)
    for rel in s.images[:limit]:
        opened = open_regular(s.full(rel), rel)
        if isinstance(opened, Skipped):
            continue  # reported by the pre-flight check
        f, _size = opened
        try:
            with f, Image.open(f) as im:
                if im.mode not in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
                    return 3
        except Exception:  # unreadable files are reported by the pre-flight check
            continue
    if not s.images and s.arrays:
        got = read_arrays(s.full(s.arrays[0]), s.arrays[0], DEFAULT_MAX_PIXELS)
        if not isinstance(got, Skipped) and got[0] and got[0][0].images.shape[-1] >= 3:
            return 3
    return 1


def model_config_from_args(args: argparse.Namespace) -> ModelConfig:
    """A new model's config from the flags, with Prime-v2 id shuffling when ``--shuffle-ids`` is given."""
    config = _new_model_config(args)
    seed = getattr(args, "shuffle_ids", None)
    if seed is None:
        return config
    if config.ell == 1:
        raise ValueError(
            "--shuffle-ids permutes token ids across digits; with --ell 1 there is nothing to shuffle"
        )
    perm = np.random.default_rng(seed).permutation(config.num_classes)
    return config.replace(permutation=tuple(int(v) for v in perm))


def _new_model_config(args: argparse.Namespace) -> ModelConfig:
    """A new model's config from the flags (modality and channels guessed from --data if absent)."""
    sizes = SIZES
    if args.size not in sizes:
        raise ValueError(f"--size must be one of {', '.join(sorted(sizes))}, got {args.size!r}")
    d_model, n_layers, n_heads = sizes[args.size]
    modality = args.modality or _guess_modality(args)
    common = {
        "ell": args.ell if args.ell is not None else DEFAULT_ELL,
        "dropout": args.dropout if args.dropout is not None else 0.0,
        "d_model": args.d_model or d_model,
        "n_layers": args.n_layers or n_layers,
        "n_heads": args.n_heads or n_heads,
    }
    if modality == "text":
        if getattr(args, "tokenizer", "bytes") == "bpe":
            learned = learn_vocabulary(args.data, args.vocab, train_config_from_args(args).data_options())
            if learned.note:
                print(f"note: {learned.note}", file=sys.stderr)
            vocab = learned.tokenizer
            return ModelConfig(
                modality="text",
                num_classes=vocab.vocab_size,
                seq_len=args.seq_len,
                tokenizer="bpe",
                vocabulary=vocab,
                **common,
            )
        return ModelConfig(modality="text", num_classes=256, seq_len=args.seq_len, **common)
    return ModelConfig(
        modality="image",
        num_classes=args.levels,
        height=args.height,
        width=args.width or args.height,
        channels=args.channels or _guess_channels(args),
        **common,
    )


def _with_shift_input(config: ModelConfig, cfg: TrainConfig) -> ModelConfig:
    """A new image model trained with --augment-p is told each image's shift (one pixel at most).

    Other models are left as they are, and the trainer refuses augmentation for them by name.
    """
    if cfg.augment_p > 0 and config.modality == "image" and not config.augment_shift:
        return config.replace(augment_shift=1)
    return config


# --------------------------------------------------------------------------- commands


def run_train(args: argparse.Namespace) -> int:
    """``prime train``; returns 0 (done), 130 (cancelled with a checkpoint); errors raise ValueError."""
    card: dict[str, Any] | None = None
    if args.recipe:
        if args.data or args.parent:
            raise ValueError("--recipe brings its own data and model; drop --data and --from")
        recipe = get_recipe(args.recipe)
        cfg = train_config_from_args(args, recipe.train)
        mcfg, data = recipe.prepare()
        card = recipe.card()
        overrides = {key: getattr(args, key) for key in ("ell", "dropout") if getattr(args, key) is not None}
        mcfg = _with_shift_input(mcfg.replace(**overrides), cfg)
        trained = cfg.to_dict()
        overrides.update(
            (key, trained[key]) for key in _LEARNING_KEYS if trained[key] != getattr(recipe.train, key)
        )
        if overrides:  # a variant of the recipe: the card says which, and how to make it again
            card["recipe_overrides"] = overrides
            flags = " ".join(
                f"--{key.replace('_', '-')} {_flag_value(value)}" for key, value in overrides.items()
            )
            card["reproduce"] = card["reproduce"].replace(" --out ", f" {flags} --out ")
        model = mcfg
    else:
        if not args.data:
            raise ValueError(
                "--data is required (a folder or file of images, arrays or text), or use --recipe"
            )
        data = args.data
        cfg = train_config_from_args(args)
        if args.parent:
            if args.ell is not None or args.dropout is not None:
                raise ValueError("a fine-tuned model keeps its parent's --ell and --dropout; drop them")
            model = resolve_model_path(args.parent)
            mcfg = read_model_info(model).config
        else:
            mcfg = model = _with_shift_input(model_config_from_args(args), cfg)
    rank = int(os.environ.get("RANK", "0"))
    if args.dry_run:
        preview = max(1, args.preview_count)
        if args.recipe:
            report = recipe_report(recipe, data, preview, mcfg)
        else:
            report = preflight(args.data, mcfg, cfg.data_options(), preview=preview)
        if args.preview and report.ok:
            _save_preview(args.preview, report, mcfg)
        if args.json:
            print(json.dumps({"kind": "preflight", **report.to_dict()}))
        else:
            print(report.summary())
        if not report.ok:
            raise DataError(report.problem)
        return 0
    if not args.recipe:
        # the same pre-flight the dry run prints; its warnings are shown before training starts
        data = preflight(args.data, mcfg, cfg.data_options(), preview=0)
        if rank == 0:
            for w in data.warnings:
                if args.json:
                    print(json.dumps({"kind": "warning", "message": w}), flush=True)
                else:
                    print(f"warning: {printable(w)}", file=sys.stderr)
    set_cpu_threads(args.threads, ranks=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
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


@dataclass(frozen=True, eq=False)
class RecipeReport(PreflightReport):
    """The pre-flight report of a recipe's data: built in code, so no files, no resizing."""

    recipe: str = ""
    source: str = ""

    def target_line(self) -> str:
        """What the model expects, and that the recipe made the items."""
        geo = self.model
        if self.modality == "image":
            kind = "grey" if geo["channels"] == 1 else "RGB"
            shape = f"{geo['height']}x{geo['width']} {kind} images, {geo['num_classes']} levels per channel"
        else:
            shape = f"sequences of {geo['seq_len']} byte tokens"
        return f"{shape}; items built in code by the recipe {self.recipe} (no resizing or data options)"

    def counts_line(self) -> str:
        """Items and their split (a recipe reads no folder)."""
        return (
            "no files read (the recipe builds its items in code); "
            f"{self.items} items ({self.train_items} for training, {self.val_items} for validation)"
        )


def recipe_report(
    recipe: Recipe, data: TokenData, preview: int, config: ModelConfig | None = None
) -> PreflightReport:
    """The pre-flight report of a recipe's :class:`TokenData`, as ``--dry-run`` shows a folder's.

    The same checks as for a folder, on the items the recipe builds: they fit the recipe's model
    (modality, length, levels), flat items are counted, the split is stated, and ``preview`` items
    spread over the training items are shown exactly as the model will see them.
    """
    config = config or recipe.prepare()[0]
    problem = None
    try:
        data.check_model(config)
    except DataError as exc:
        problem = str(exc)
    stats: dict[str, Any] = {"source": recipe.source}
    if config.vocabulary is not None:
        vocab = config.vocabulary
        lengths = np.array([len(vocab.token_bytes(i)) for i in range(vocab.vocab_size)], dtype=np.int64)
        stats.update(
            vocabulary_stats(vocab, int(lengths[data.tokens.reshape(-1)].sum()), int(data.tokens.size))
        )
    n_all = len(data)
    flat_sources: tuple[str, ...] = ()
    n_flat = 0
    if n_all:
        flat = flat_mask(
            data.tokens, config.modality, config.channels, config.num_classes, vocabulary=config.vocabulary
        )
        n_flat = int(flat.sum())
        flat_sources = tuple(data.sources[int(data.groups[i])] for i in np.flatnonzero(flat)[:1000])
        what = "one flat colour" if config.modality == "image" else "blank (whitespace or one repeated byte)"
        stats["flat items"] = f"{n_flat:,} of {n_all:,} ({n_flat / n_all:.1%}) are {what}"
        counts = np.bincount(data.tokens.reshape(-1).astype(np.int64), minlength=config.num_classes)
        mean = float(counts @ np.arange(len(counts))) / max(1, int(counts.sum()))
        stats["token values"] = f"{int((counts > 0).sum())} of {config.num_classes} used, mean {mean:.1f}"
    if problem is None and len(data.train_index) == 0:
        problem = "the recipe's data has no training items"
    pool = data.train_index if len(data.train_index) else np.arange(n_all)
    k = min(preview, len(pool))
    pick = pool[np.linspace(0, len(pool) - 1, k).round().astype(np.int64)] if k else np.zeros(0, np.int64)
    L = config.seq_length
    return RecipeReport(
        path=f"recipe {recipe.name}",
        modality=config.modality,
        files_found=0,
        files_used=0,
        skipped=(),
        hidden_ignored=0,
        items=n_all,
        train_items=len(data.train_index),
        val_items=len(data.val_index),
        stats=stats,
        preview_tokens=data.batch(pick) if k else torch.zeros((0, L), dtype=torch.int64),
        preview_text=tuple(
            tokens_to_str(data.tokens[i], config.vocabulary or BYTES, boundaries=True) for i in pick
        )
        if config.modality == "text"
        else (),
        preview_sources=tuple(printable(data.sources[int(data.groups[i])]) for i in pick),
        fingerprint=data.fingerprint,
        options={"recipe": recipe.name},
        model={
            "modality": config.modality,
            "tokenizer": config.tokenizer if config.modality == "text" else "",
            "num_classes": config.num_classes,
            "height": config.height,
            "width": config.width,
            "channels": config.channels,
            "seq_len": config.seq_length,
        },
        problem=problem,
        data=data if problem is None else None,
        flat_items=n_flat,
        flat_sources=flat_sources,
        recipe=recipe.name,
        source=recipe.source,
    )


def _save_preview(path: str, report: Any, config: ModelConfig) -> None:
    """A PNG grid of the report's preprocessed items (images only)."""
    if config.modality != "image":
        raise ValueError("--preview draws images; for text the report prints the preview")
    images = tokens_to_images(report.preview_tokens, config)  # (k, H, W, ch)
    scale = auto_scale(config.height, config.width)
    save_png(path, grid(images, scale=scale), {"prime-preflight": ", ".join(report.preview_sources)})
