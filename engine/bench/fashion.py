"""Judge 28x28 Fashion-MNIST models: does a sampler draw recognisable garments?

``python -m engine.bench.fashion MODEL [MODEL ...] [--samples 256] [--steps 64] [--seeds 0]``

The judge is a small classifier (an MLP 784-256-128-10, seed 0, a few epochs) fitted on the
60,000 real training images with their labels every time the benchmark runs (nothing is cached on
disk); the data comes through the recipes' importer (:func:`engine.training.recipes.fashion_data`,
so ``PRIME_FASHION_MNIST`` points it at another folder) and the labels through
:func:`engine.data.arrays.read_idx_labels`. Per model, sampler setting and seed it reports the share
of samples the classifier reads with confidence >= 0.9, the share of each of the ten classes, and
the Fréchet distance of its hidden features to the 10,000 test images. The reference row is the same
numbers for ``--samples`` real test images (what a perfect model scores at that sample count: the
Fréchet estimate is biased upwards for few samples), and the floor is the full training set against
the test set. ``--eval-items N`` adds the valid bound on the first N test images (slow on a CPU).

The bar for bundling a pair (issue 19): recognisable garments, that is the classifier confident on
most samples (a confident share above 0.5; the real test images' share is printed beside it) and
every class between 5 % and 15 %.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.bench.digits import Setting, add_setting_flags, score_settings, settings_from_args
from engine.bench.metrics import _entropy_bits, fit_classifier, frechet_distance
from engine.data import DataError, TokenData
from engine.data.arrays import read_idx_labels
from engine.files.library import resolve_model
from engine.files.modelfile import load_model
from engine.models import PrimeModel
from engine.training import evaluate
from engine.training.recipes import fashion_data, fashion_dir

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
GEOMETRY = (28, 28, 1, 256)  # height, width, channels, levels
BAR_CONFIDENT = 0.5  # "confident on most samples" (the real test images' share is printed beside it)
BAR_CLASS_SHARE = (0.05, 0.15)
FEATURES = 128


class _FashionNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, len(CLASSES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.body(x)
        return self.head(feats), feats


def _normalise(tokens: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(tokens), dtype=torch.float32) / 255.0


@dataclass
class FashionJudge:
    """A classifier fitted on real Fashion-MNIST; ``score`` measures a batch of 784-token samples."""

    net: _FashionNet
    real_test_features: np.ndarray
    real_train_features: np.ndarray
    test_accuracy: float

    @classmethod
    def fit(
        cls,
        train_tokens: np.ndarray,
        train_labels: np.ndarray,
        test_tokens: np.ndarray,
        test_labels: np.ndarray,
        seed: int = 0,
        epochs: int = 4,
        batch: int = 128,
    ) -> FashionJudge:
        """Train on (N, 784) tokens in 0..255 with labels 0..9; deterministic for a seed."""
        if train_tokens.ndim != 2 or train_tokens.shape[1] != 784 or len(train_tokens) != len(train_labels):
            raise ValueError(
                f"need (N, 784) tokens with N labels, got {train_tokens.shape}, {len(train_labels)}"
            )
        if len(train_labels) and int(np.max(train_labels)) >= len(CLASSES):
            raise ValueError(f"labels must be in 0..{len(CLASSES) - 1}, got {int(np.max(train_labels))}")
        x = _normalise(train_tokens)
        y = torch.as_tensor(train_labels, dtype=torch.long)
        net = fit_classifier(_FashionNet, x, y, seed, epochs, batch=batch, lr=1e-3, weight_decay=1e-5)
        with torch.no_grad():
            logits, test_feats = net(_normalise(test_tokens))
            acc = float((logits.argmax(-1) == torch.as_tensor(test_labels, dtype=torch.long)).float().mean())
            train_feats = torch.cat([net(x[i : i + 4096])[1] for i in range(0, len(x), 4096)])
        return cls(net, test_feats.numpy().astype(np.float64), train_feats.numpy().astype(np.float64), acc)

    def score(self, tokens: np.ndarray) -> dict[str, Any]:
        """Confident share (>= 0.9), mean confidence, class shares, Fréchet distance to the test images."""
        with torch.no_grad():
            logits, feats = self.net(_normalise(tokens))
        conf, label = logits.softmax(-1).max(-1)
        counts = np.bincount(label.numpy(), minlength=len(CLASSES))
        shares = counts / max(1, counts.sum())
        return {
            "samples": int(len(tokens)),
            "confident_share": float((conf >= 0.9).float().mean()),
            "mean_confidence": float(conf.mean()),
            "class_counts": counts.tolist(),
            "class_shares": [float(s) for s in shares],
            "min_class_share": float(shares.min()),
            "max_class_share": float(shares.max()),
            "class_balance_entropy_bits": _entropy_bits(counts),
            "frechet_distance": frechet_distance(feats.numpy().astype(np.float64), self.real_test_features),
        }

    def floor(self) -> float:
        """Fréchet distance of all the real training images to the test images."""
        return frechet_distance(self.real_train_features, self.real_test_features)


def _item_index(source: str) -> int:
    """``train-images-idx3-ubyte.gz[12]`` -> 12 (the item's place in its IDX file)."""
    return int(source.rsplit("[", 1)[1].rstrip("]"))


def _labels_file(folder: Path, image_file: str) -> Path:
    """The label file beside an image file (``*-images-idx3-ubyte[.gz]`` -> ``*-labels-idx1-ubyte[.gz]``)."""
    stem = image_file.removesuffix(".gz").replace("-images-idx3-", "-labels-idx1-")
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no label file {stem}(.gz) for {image_file}; the judge needs the labels")


def fashion_labels(data: TokenData, folder: Path) -> np.ndarray:
    """The label (0..9) of every item of ``data`` (from ``fashion_data(folder)``), read from the IDX files.

    Each image file's labels are read once (their count must match the file's items) and each item
    takes the label at its place in its file.
    """
    names = [src.rsplit("[", 1)[0] for src in data.sources]  # the item's file, relative to folder
    items_of: dict[str, int] = {}
    for name in names:
        items_of[name] = items_of.get(name, 0) + 1
    by_file = {
        name: read_idx_labels(_labels_file((folder / name).parent, name.rsplit("/", 1)[-1]), count=n)
        for name, n in items_of.items()
    }
    place = np.array([_item_index(src) for src in data.sources], dtype=np.int64)
    per_source = np.array([by_file[name][i] for name, i in zip(names, place, strict=True)], dtype=np.int64)
    labels = per_source[data.groups]
    if len(labels) and int(labels.max()) >= len(CLASSES):
        raise DataError(
            f"{folder}: label {int(labels.max())} found; Fashion-MNIST has {len(CLASSES)} classes"
        )
    return labels


def make_judge(
    path: str | Path | None = None, seed: int = 0, epochs: int = 4
) -> tuple[FashionJudge, TokenData]:
    """(judge, data): the classifier fitted on the training images of ``fashion_data(path)``."""
    folder = fashion_dir(path)
    data = fashion_data(folder)
    labels = fashion_labels(data, folder)
    judge = FashionJudge.fit(
        data.tokens[data.train_index],
        labels[data.train_index],
        data.tokens[data.val_index],
        labels[data.val_index],
        seed=seed,
        epochs=epochs,
    )
    return judge, data


def verdict(scores: dict[str, Any]) -> bool:
    """Whether ``FashionJudge.score``'s result meets the bar (recognisable, balanced garments)."""
    return bool(
        scores["confident_share"] > BAR_CONFIDENT
        and BAR_CLASS_SHARE[0] <= scores["min_class_share"]
        and scores["max_class_share"] <= BAR_CLASS_SHARE[1]
    )


def real_reference(judge: FashionJudge, data: TokenData, num: int, seeds: list[int]) -> dict[str, Any]:
    """The judge on ``num`` real test images (one draw per seed): a perfect model's score."""
    if not 1 <= num <= len(data.val_index):
        raise ValueError(f"--samples must be in 1..{len(data.val_index)} (the test images), got {num}")
    rows = []
    for seed in seeds:
        pick = np.random.default_rng(seed).choice(data.val_index, size=num, replace=False)
        rows.append({**judge.score(data.tokens[pick].astype(np.int64)), "seed": seed})
    return {
        "samples": num,
        "rows": rows,
        "confident_share": float(np.mean([r["confident_share"] for r in rows])),
        "frechet_distance": float(np.mean([r["frechet_distance"] for r in rows])),
        "floor_full": judge.floor(),
        "test_accuracy": judge.test_accuracy,
    }


def check_model(model: PrimeModel, name: str) -> None:
    """ValueError unless ``model`` is a 28x28 grey 256-level image model."""
    cfg = model.config
    if cfg.modality != "image" or (cfg.height, cfg.width, cfg.channels, cfg.num_classes) != GEOMETRY:
        raise ValueError(f"{name}: not a 28x28 grey 256-level image model (Fashion-MNIST)")


def judge_model(
    model_or_path: str | PrimeModel,
    judge: FashionJudge,
    data: TokenData,
    settings: list[Setting],
    num: int = 256,
    seeds: tuple[int, ...] = (0,),
    batch: int = 64,
    eval_items: int = 0,
) -> dict[str, Any]:
    """The judge's verdict per setting and seed for one model (and its valid bound with ``eval_items``)."""
    if isinstance(model_or_path, PrimeModel):
        model, name = model_or_path, "(in memory)"
    else:
        model, name = load_model(resolve_model(model_or_path))[0], str(model_or_path)
    check_model(model, name)
    out: dict[str, Any] = {"model": name, "ell": model.config.ell, "parameters": model.num_parameters()}
    if eval_items:
        bound = evaluate(model, data, max_items=eval_items, seed=0)
        out["valid_bound_bits_per_dim"] = bound.bits_per_dim
        out["stderr_bits_per_dim"] = bound.stderr_bits_per_dim

    def score(tokens: np.ndarray) -> dict[str, Any]:
        scores = judge.score(tokens)
        return {**scores, "meets_bar": verdict(scores)}

    out["rows"] = score_settings(model, settings, num, tuple(seeds), batch, score)
    return out


def _shares(row: dict[str, Any]) -> str:
    return " ".join(f"{s:.2f}" for s in row["class_shares"])


def format_report(ref: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """A plain-text table: the reference rows, then one row per model, setting and seed."""
    lines = [
        f"judge: test accuracy {ref['test_accuracy']:.3f}; "
        f"floor: real train vs test FD {ref['floor_full']:.2f}",
        "model | ell | bound bits/dim | setting | seed | NFE | confident | class shares | FD | bar | s",
    ]
    for r in ref["rows"]:
        lines.append(
            f"real test images | - | - | {ref['samples']} drawn | {r['seed']} | - | "
            f"{r['confident_share']:.3f} | {_shares(r)} | {r['frechet_distance']:.2f} | "
            f"{'yes' if verdict(r) else 'no'} | -"
        )
    for res in results:
        bound = (
            f"{res['valid_bound_bits_per_dim']:.3f} ± {res['stderr_bits_per_dim']:.3f}"
            if "valid_bound_bits_per_dim" in res
            else "-"
        )
        for r in res["rows"]:
            lines.append(
                f"{res['model']} | {res['ell']} | {bound} | {r['setting']} | {r['seed']} | "
                f"{r['mean_nfe']:.1f} | {r['confident_share']:.3f} | {_shares(r)} | "
                f"{r['frechet_distance']:.2f} | {'yes' if r['meets_bar'] else 'no'} | {r['seconds']:.1f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.bench.fashion", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="model files or library names")
    p.add_argument("--data", help="the Fashion-MNIST folder (default $PRIME_FASHION_MNIST or Debian's)")
    add_setting_flags(p)
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=4, help="the judge's training epochs")
    p.add_argument(
        "--eval-items", type=int, default=0, help="valid bound on this many test images (0 = none)"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.samples < 16:
        p.error("--samples must be at least 16 (the Fréchet distance needs a covariance)")
    if args.epochs < 1 or args.eval_items < 0:
        p.error("--epochs must be >= 1 and --eval-items >= 0")
    torch.set_num_threads(args.threads)
    settings = settings_from_args(args)
    try:
        judge, data = make_judge(args.data, 0, args.epochs)
        ref = real_reference(judge, data, args.samples, args.seeds)
        results = []
        for name in args.models:
            results.append(
                judge_model(
                    name, judge, data, settings, args.samples, tuple(args.seeds), eval_items=args.eval_items
                )
            )
            if not args.json:
                print(format_report(ref, results[-1:]), flush=True)
    except ValueError as exc:  # DataError included: a clear message, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"reference": ref, "results": results}))
    return 0


__all__ = [
    "CLASSES",
    "FashionJudge",
    "fashion_labels",
    "judge_model",
    "make_judge",
    "real_reference",
    "verdict",
]

if __name__ == "__main__":
    sys.exit(main())
