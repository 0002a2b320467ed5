"""Reproducible recipes for the bundled models: data, model config and training config in one place.

``prime train --recipe NAME --out PATH`` retrains a bundled model from its raw data:

- ``digits-prime`` / ``digits-mdm``: scikit-learn's ``load_digits`` (1,797 8x8 images with 17
  grey levels, CC BY 4.0; needs the ``recipes`` extra), Prime (ell = 2) and its MDM baseline
  (ell = 1) with the same backbone, steps and batch (so the same compute: Prime costs the same
  per step as MDM).
- ``kjv-prime`` / ``kjv-mdm``: the King James Bible as bytes (public domain; a compressed copy is
  kept in ``datasets/kjv/``), whole books held out for validation.
- ``fashion-prime`` / ``fashion-mdm``: Fashion-MNIST (28x28 garments, 256 grey levels, MIT licence;
  Debian's ``dataset-fashion-mnist``, or the folder named by ``PRIME_FASHION_MNIST``), Prime
  (ell = 2, base 16: the paper's pixel setting) and MDM (ell = 1); the 10,000 test images validate.
"""

from __future__ import annotations

import dataclasses
import lzma
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.config import ModelConfig
from engine.data import DataError, DataOptions, TokenData, load_data
from engine.data.dataset import make_token_data
from engine.data.text import chunk_ids
from engine.data.vocabulary import fit_vocabulary
from engine.tokenizer import BpeTokenizer
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
    # sampler settings measured as this model's best default (written to the card's "sampler";
    # `prime generate`, the studio and the benches start from them): engine.api.recommended_settings
    sampler: dict[str, Any] = dataclasses.field(default_factory=dict)

    def prepare(self) -> tuple[ModelConfig, TokenData]:
        """(model config, data): a BPE recipe's config takes the vocabulary its data learned."""
        data = self.data()
        if data.vocabulary is None:
            return self.model, data
        return self.model.replace(num_classes=data.vocabulary.vocab_size, vocabulary=data.vocabulary), data

    def card(self) -> dict:
        """The model-card fields a recipe fixes (the trainer adds steps, time and metrics)."""
        card = {
            "recipe": self.name,
            "summary": self.summary,
            "data_source": self.source,
            "reproduce": f"prime train --recipe {self.name} --out {self.name}.safetensors",
        }
        if self.sampler:
            card["sampler"] = dict(self.sampler)
        return card


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


def kjv_books() -> dict[str, str]:
    """Book abbreviation -> its verses, one per line (canon order)."""
    by_book: dict[str, list[str]] = {}
    for book, text in kjv_verses():
        by_book.setdefault(book, []).append(text)
    unknown = set(KJV_VALIDATION_BOOKS) - set(by_book)
    if unknown:
        raise DataError(f"validation books not in the corpus: {sorted(unknown)}")
    return {book: "\n".join(verses) + "\n" for book, verses in by_book.items()}


def kjv_bpe_data(seq_len: int, vocab_size: int) -> TokenData:
    """The KJV as ids of a byte-level BPE vocabulary learned from the training books only.

    Each book is tokenized whole and cut into ``seq_len`` tokens (the last piece padded with the
    newline token); the held-out books are the byte recipes' (``KJV_VALIDATION_BOOKS``).
    """
    books = kjv_books()
    train_text = [t.encode("utf-8") for b, t in books.items() if b not in KJV_VALIDATION_BOOKS]
    learned = fit_vocabulary(train_text, vocab_size)
    tok = learned.tokenizer
    return tokenized_books(
        books,
        tok,
        seq_len,
        {
            "source": "kjv",
            "validation_books": list(KJV_VALIDATION_BOOKS),
            "tokenizer": f"byte-level BPE, {tok.vocab_size} entries, learned from the training books",
            "bytes_per_token": round(float(tok.trained_bytes_per_token or 0.0), 3),
        },
        frozenset(KJV_VALIDATION_BOOKS),
    )


def tokenized_books(
    books: dict[str, str],
    tok: BpeTokenizer,
    seq_len: int,
    description: dict[str, Any],
    val_sources: frozenset[str],
) -> TokenData:
    """Books (name -> text) as ids of ``tok``, cut into ``seq_len``-token passages.

    Each book is encoded whole and its last piece padded with the newline token; the books named
    in ``val_sources`` are held out.
    """
    pad = int(tok.encode(b"\n")[0])
    rows, groups = [], []
    for g, ids in enumerate(tok.encode_batch([t.encode("utf-8") for t in books.values()])):
        block = chunk_ids(ids, seq_len, pad)
        rows.append(block)
        groups.append(np.full(len(block), g, dtype=np.int64))
    return make_token_data(
        np.concatenate(rows),
        np.concatenate(groups),
        tuple(books),
        num_classes=tok.vocab_size,
        modality="text",
        val_fraction=0.0,
        seed=0,
        description=description,
        val_sources=val_sources,
        vocabulary=tok,
    )


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


# dropout 0.1: on 1,500 training digits it gave the more reliable samples (README, "Digits quality")
_DIGITS_MODEL = dict(
    modality="image",
    num_classes=17,
    height=8,
    width=8,
    channels=1,
    d_model=128,
    n_layers=4,
    n_heads=4,
    dropout=0.1,
)
# the settings every recipe starts from (the digits recipes double the steps, the text recipes
# override steps, batch and a few more): a change here changes every recipe
_BASE_TRAIN = TrainConfig(
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
_KJV_TRAIN = dataclasses.replace(_BASE_TRAIN, steps=8000, batch_size=16, warmup=300)
# tokenized KJV: byte-level BPE learned from the training books, passages of _KJV_TOKENS tokens
_KJV_TOKENS = 128
_KJV_VOCAB = 8192
_KJV_BPE_MODEL = dict(
    modality="text",
    num_classes=_KJV_VOCAB,
    seq_len=_KJV_TOKENS,
    tokenizer="bpe",
    d_model=256,
    n_layers=4,
    n_heads=4,
)
_KJV_BPE_TRAIN = dataclasses.replace(
    _BASE_TRAIN, steps=2500, batch_size=16, lr=1e-3, warmup=200, eval_every=500, preview_every=500
)
# digits: 14,000 steps with AdamW weight decay 0.1, and a late corrector by default (30% of the free
# visible digits redrawn after each step that ends at t <= 0.3), all chosen with
# `python -m engine.bench.digits` (README, "Digits quality")
_DIGITS_TRAIN = dataclasses.replace(_BASE_TRAIN, steps=14000, weight_decay=0.1)
_DIGITS_SAMPLER = {"corrector": 0.3, "corrector_start": 0.3}
_DIGITS_SOURCE = "scikit-learn load_digits (UCI optical digits test set, 1,797 images, CC BY 4.0)"
_KJV_SOURCE = "King James Bible (public domain), Debian bible-kjv-text, datasets/kjv/kjv.txt.xz"

# --------------------------------------------------------------------------- Fashion-MNIST

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_ENV = "PRIME_FASHION_MNIST"  # names another folder holding the same IDX files
FASHION_TRAIN_PREFIX = "train-images"  # the 60,000 training images
FASHION_TEST_PREFIX = "t10k-images"  # the 10,000 test images: the validation split
_FASHION_MODEL = dict(
    modality="image", num_classes=256, height=28, width=28, channels=1, d_model=128, n_layers=4, n_heads=4
)


def fashion_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The Fashion-MNIST folder: ``path``, else ``$PRIME_FASHION_MNIST``, else :data:`FASHION_DIR`."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get(FASHION_ENV) or FASHION_DIR)


def _item_file(source: str) -> str:
    """The file name of an array item's source (``sub/train-images-idx3-ubyte.gz[12]`` -> its name)."""
    return source.rsplit("[", 1)[0].rsplit("/", 1)[-1]


def fashion_data(path: str | os.PathLike[str] | None = None) -> TokenData:
    """Fashion-MNIST as 784 tokens of 256 levels, read by the data importer (``prime train --data``).

    The folder's IDX image files are loaded as ``prime train --data FOLDER --height 28`` would
    (label files are skipped); the ``train-images`` items train and the ``t10k-images`` items (the
    standard test set) validate.
    """
    folder = fashion_dir(path)
    if not folder.is_dir():
        raise DataError(
            f"Fashion-MNIST is not at {folder}: install it with `apt-get install dataset-fashion-mnist` "
            f"or set {FASHION_ENV} to a folder holding its IDX files"
        )
    config = ModelConfig(ell=1, **_FASHION_MODEL)
    loaded = load_data(folder, config, DataOptions(val_fraction=0.0))
    files = [_item_file(src) for src in loaded.sources]
    other = sorted({f for f in files if not f.startswith((FASHION_TRAIN_PREFIX, FASHION_TEST_PREFIX))})
    if other:
        raise DataError(
            f"{folder} holds images that are not Fashion-MNIST's IDX files: {', '.join(other[:5])}"
        )
    test = frozenset(
        src for src, f in zip(loaded.sources, files, strict=True) if f.startswith(FASHION_TEST_PREFIX)
    )
    if not test or len(test) == len(loaded.sources):
        missing = FASHION_TEST_PREFIX if not test else FASHION_TRAIN_PREFIX
        raise DataError(f"{folder} has no {missing}-idx3-ubyte(.gz) file; the recipe needs both splits")
    return make_token_data(
        loaded.tokens,
        loaded.groups,
        loaded.sources,
        num_classes=256,
        modality="image",
        val_fraction=0.0,
        seed=0,
        description={
            "source": "fashion-mnist",
            "folder": str(folder),
            "validation": f"the {len(test):,} {FASHION_TEST_PREFIX} items (the standard test set)",
        },
        val_sources=test,
    )


# about 90 minutes on one CPU thread: a step (16 images, 12,544 tokens) measured 1.45 s of CPU time
# at ell = 2 and 1.47 s at ell = 1 (one thread, on a shared 2-core machine)
_FASHION_TRAIN = dataclasses.replace(
    _BASE_TRAIN, steps=3600, batch_size=16, eval_every=500, preview_every=500
)
_FASHION_SOURCE = "Fashion-MNIST (Zalando Research, MIT licence), Debian dataset-fashion-mnist"


RECIPES: dict[str, Recipe] = {
    "digits-prime": Recipe(
        "digits-prime",
        "8x8 handwritten digits, Prime with ell = 2 (base 5)",
        ModelConfig(ell=2, **_DIGITS_MODEL),
        _DIGITS_TRAIN,
        digits_data,
        _DIGITS_SOURCE,
        sampler=_DIGITS_SAMPLER,
    ),
    "digits-mdm": Recipe(
        "digits-mdm",
        "8x8 handwritten digits, MDM baseline (ell = 1)",
        ModelConfig(ell=1, **_DIGITS_MODEL),
        _DIGITS_TRAIN,
        digits_data,
        _DIGITS_SOURCE,
        sampler=_DIGITS_SAMPLER,
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
    "kjv-bpe-prime": Recipe(
        "kjv-bpe-prime",
        f"King James Bible in {_KJV_VOCAB:,} learned BPE tokens, {_KJV_TOKENS}-token passages, "
        "Prime with ell = 2",
        ModelConfig(ell=2, **_KJV_BPE_MODEL),
        _KJV_BPE_TRAIN,
        lambda: kjv_bpe_data(_KJV_TOKENS, _KJV_VOCAB),
        _KJV_SOURCE,
    ),
    "kjv-bpe-mdm": Recipe(
        "kjv-bpe-mdm",
        f"King James Bible in {_KJV_VOCAB:,} learned BPE tokens, {_KJV_TOKENS}-token passages, "
        "MDM baseline (ell = 1)",
        ModelConfig(ell=1, **_KJV_BPE_MODEL),
        _KJV_BPE_TRAIN,
        lambda: kjv_bpe_data(_KJV_TOKENS, _KJV_VOCAB),
        _KJV_SOURCE,
    ),
    "fashion-prime": Recipe(
        "fashion-prime",
        "28x28 Fashion-MNIST garments, 256 grey levels, Prime with ell = 2 (base 16)",
        ModelConfig(ell=2, **_FASHION_MODEL),
        _FASHION_TRAIN,
        fashion_data,
        _FASHION_SOURCE,
    ),
    "fashion-mdm": Recipe(
        "fashion-mdm",
        "28x28 Fashion-MNIST garments, 256 grey levels, MDM baseline (ell = 1)",
        ModelConfig(ell=1, **_FASHION_MODEL),
        _FASHION_TRAIN,
        fashion_data,
        _FASHION_SOURCE,
    ),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; a clear error lists the known ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}")
    return RECIPES[name]
