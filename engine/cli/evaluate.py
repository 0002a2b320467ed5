"""``prime eval --model MODEL --data PATH``: the valid bound of a model on data, with its standard error."""

from __future__ import annotations

import argparse
import json
import time

from engine.cli.common import resolve_model_path
from engine.data import DataOptions, preflight
from engine.device import pick_device
from engine.files.modelfile import load_model
from engine.training.evaluate import evaluate


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``prime eval``."""
    p = subparsers.add_parser(
        "eval", help="valid bound (bits/dim; text: bits/token and bits/byte) of a model on data"
    )
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


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None and value == value and abs(value) != float("inf") else "n/a"


def run_eval(args: argparse.Namespace) -> int:
    """``prime eval``: the valid bound of a model on a data path."""
    path = resolve_model_path(args.model)
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
        if result.modality == "text":
            print(
                f"             {_fmt(result.bits_per_byte)} ± {_fmt(result.stderr_bits_per_byte)} "
                f"bits/byte (of the UTF-8 text: {result.tokenizer} tokens, "
                f"{_fmt(result.bytes_per_token)} bytes per token)"
            )
        else:
            print(f"             {result.bits_per_dim:.4f} bits/dim (per sub-pixel)")
        print(
            f"perplexity:  <= {result.perplexity:.3f} per token "
            "(an upper bound: exp of the bound in nats/token)"
        )
        print(f"how: {result.how}; {seconds:.1f} s")
    return 0
