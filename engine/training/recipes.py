"""Reproducible recipes for the bundled models: data, model config and training config in one place.

``prime train --recipe NAME --out PATH`` retrains a bundled model from its raw data:

- ``digits-prime`` / ``digits-mdm``: scikit-learn's ``load_digits`` (1,797 8x8 images with 17
  grey levels, CC BY 4.0; needs the ``recipes`` extra), Prime (ell = 2) and its MDM baseline
  (ell = 1) with the same backbone, steps and batch (so the same compute: Prime costs the same
  per step as MDM).
- ``kjv-prime`` / ``kjv-mdm``: the King James Bible as bytes (public domain; a compressed copy is
  kept in ``datasets/kjv/``), whole books held out for validation.
"""

from __future__ import annotations

import dataclasses
import lzma
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.config import ModelConfig
from engine.data import DataError, TokenData
from engine.data.dataset import make_token_data
from engine.training.config import TrainConfig

KJV_PATH = Path(__file__).resolve().parents[2] / "datasets" / "kjv" / "kjv.txt.xz"
# Whole books held out for validation (one from each part of the canon).
KJV_VALIDATION_BOOKS = ("Ruth", "Eccl", "Jonah", "Phi", "Jude")  # abbreviations as `bible` prints them
DIGITS_VALIDATION = 297  # items held out from load_digits (seeded permutation)


@dataclass(frozen=True)
class Recipe:
    """How one bundled model is made."""

    name: str
    summary: str
    model: ModelConfig
    train: TrainConfig
    data: Callable[[], TokenData]
    source: str

    def card(self) -> dict:
        """The model-card fields a recipe fixes (the trainer adds steps, time and metrics)."""
        return {
            "recipe": self.name,
            "summary": self.summary,
            "data_source": self.source,
            "reproduce": f"prime train --recipe {self.name} --out {self.name}.safetensors",
        }


def digits_data() -> TokenData:
    """sklearn's 8x8 digits as tokens (1797, 64) with 17 levels; a seeded 297-item validation split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits recipes need scikit-learn: pip install 'prime-studio[recipes]'") from None
    images = load_digits().images.astype(np.int64)  # (1797, 8, 8) values 0..16
    tokens = images.reshape(len(images), 64)
    order = np.random.default_rng(0).permutation(len(tokens))
    sources = tuple(f"digit-{i}" for i in range(len(tokens)))
    return make_token_data(
        tokens.astype(np.uint8),
        np.arange(len(tokens), dtype=np.int64),
        sources,
        num_classes=17,
        modality="image",
        val_fraction=0.0,
        seed=0,
        description={
            "source": "sklearn-digits",
            "validation": f"{DIGITS_VALIDATION} items, seeded permutation",
        },
        val_sources=frozenset(sources[i] for i in order[:DIGITS_VALIDATION]),
    )


def kjv_verses(path: Path = KJV_PATH) -> list[tuple[str, str]]:
    """(book, verse text) pairs from the compressed corpus ("BookC:V text" per line, e.g. "1Sm3:4 ...")."""
    if not path.is_file():
        raise DataError(f"the KJV corpus is missing at {path}; see datasets/kjv/README.md")
    verses = []
    pattern = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")
    for line in lzma.open(path, "rt", encoding="utf-8"):
        m = pattern.match(line.rstrip("\n"))
        if m:
            verses.append((m.group(1), m.group(4)))
    if not verses:
        raise DataError(f"no verses found in {path}")
    return verses


def kjv_data(seq_len: int = 128) -> TokenData:
    """The KJV as byte sequences of ``seq_len``, whole books held out for validation.

    Verses are packed one per line within each book and cut along book boundaries (a book's last
    piece is padded with newlines).
    """
    by_book: dict[str, list[str]] = {}
    for book, text in kjv_verses():
        by_book.setdefault(book, []).append(text)
    rows, groups, books = [], [], []
    for g, (book, verses) in enumerate(by_book.items()):
        data = ("\n".join(verses) + "\n").encode("utf-8")
        pad = (-len(data)) % seq_len
        data += b"\n" * pad
        arr = np.frombuffer(data, dtype=np.uint8).reshape(-1, seq_len)
        rows.append(arr)
        groups.append(np.full(len(arr), g, dtype=np.int64))
        books.append(book)
    unknown = set(KJV_VALIDATION_BOOKS) - set(books)
    if unknown:
        raise DataError(f"validation books not in the corpus: {sorted(unknown)}")
    return make_token_data(
        np.concatenate(rows),
        np.concatenate(groups),
        tuple(books),
        num_classes=256,
        modality="text",
        val_fraction=0.0,
        seed=0,
        description={"source": "kjv", "validation_books": list(KJV_VALIDATION_BOOKS)},
        val_sources=frozenset(KJV_VALIDATION_BOOKS),
    )


_DIGITS_MODEL = dict(
    modality="image", num_classes=17, height=8, width=8, channels=1, d_model=128, n_layers=4, n_heads=4
)
_DIGITS_TRAIN = TrainConfig(
    steps=5000,
    batch_size=64,
    lr=2e-3,
    warmup=200,
    lr_schedule="cosine",
    ema=0.999,
    objective="masked_ce",
    eval_every=500,
    eval_batches=8,
    preview_every=1000,
    checkpoint_every=250,
    seed=0,
    bf16=None,  # "auto": bf16 autocast only where this machine runs it faster (engine/device.py)
    val_fraction=0.0,
)
_KJV_LEN = 256
_KJV_MODEL = dict(modality="text", num_classes=256, seq_len=_KJV_LEN, d_model=128, n_layers=4, n_heads=4)
# 4,096 bytes per step; rotary positions (the text default) let attention find neighbouring bytes
_KJV_TRAIN = dataclasses.replace(_DIGITS_TRAIN, steps=8000, batch_size=16, warmup=300)
_DIGITS_SOURCE = "scikit-learn load_digits (UCI optical digits test set, 1,797 images, CC BY 4.0)"
_KJV_SOURCE = "King James Bible (public domain), Debian bible-kjv-text, datasets/kjv/kjv.txt.xz"

RECIPES: dict[str, Recipe] = {
    "digits-prime": Recipe(
        "digits-prime",
        "8x8 handwritten digits, Prime with ell = 2 (base 5)",
        ModelConfig(ell=2, **_DIGITS_MODEL),
        _DIGITS_TRAIN,
        digits_data,
        _DIGITS_SOURCE,
    ),
    "digits-mdm": Recipe(
        "digits-mdm",
        "8x8 handwritten digits, MDM baseline (ell = 1)",
        ModelConfig(ell=1, **_DIGITS_MODEL),
        _DIGITS_TRAIN,
        digits_data,
        _DIGITS_SOURCE,
    ),
    "kjv-prime": Recipe(
        "kjv-prime",
        f"King James Bible bytes, {_KJV_LEN}-byte passages, Prime with ell = 2",
        ModelConfig(ell=2, **_KJV_MODEL),
        _KJV_TRAIN,
        lambda: kjv_data(_KJV_LEN),
        _KJV_SOURCE,
    ),
    "kjv-mdm": Recipe(
        "kjv-mdm",
        f"King James Bible bytes, {_KJV_LEN}-byte passages, MDM baseline (ell = 1)",
        ModelConfig(ell=1, **_KJV_MODEL),
        _KJV_TRAIN,
        lambda: kjv_data(_KJV_LEN),
        _KJV_SOURCE,
    ),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; a clear error lists the known ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    return RECIPES[name]
