"""Learning a BPE vocabulary for a text folder, from its training split only.

The split is the one training will use (:func:`engine.data.dataset.split_indices` on the
documents' sources), so no held-out text shapes the vocabulary. A single file is split by
position: the vocabulary is learned from the part before the held-out tail.
"""

from __future__ import annotations

import os

import numpy as np

from engine.data.collect import Items, read_documents
from engine.data.dataset import split_indices
from engine.data.files import DataError, Skipped, scan
from engine.data.options import DataOptions
from engine.tokenizer import LearnedVocabulary, bytes_per_token, learn_bpe


def training_documents(
    documents: list[bytes], groups: list[int], sources: tuple[str, ...], opt: DataOptions
) -> list[bytes]:
    """The documents (or the leading part of a single source) that training will see."""
    g = np.asarray(groups, dtype=np.int64)
    if len(set(groups)) <= 1:
        stream = b"\n\n".join(documents)
        keep = len(stream) - int(round(opt.val_fraction * len(stream)))
        return [stream[:keep]] if keep > 0 else [stream]
    train_index, _ = split_indices(g, sources, opt.val_fraction, opt.seed)
    return [documents[int(i)] for i in train_index]


def fit_vocabulary(documents: list[bytes], vocab_size: int) -> LearnedVocabulary:
    """:func:`~engine.tokenizer.learn_bpe`, with the bytes per token it gives on ``documents`` noted."""
    learned = learn_bpe(documents, vocab_size)
    learned.tokenizer.trained_bytes_per_token = bytes_per_token(learned.tokenizer, documents)
    return learned


def learn_vocabulary(
    path: str | os.PathLike[str], vocab_size: int, options: DataOptions | None = None
) -> LearnedVocabulary:
    """A byte-level BPE vocabulary of at most ``vocab_size`` entries learned from ``path``'s training split.

    Raises :class:`DataError` when there is no readable text.
    """
    opt = options or DataOptions()
    s = scan(path, opt.include, opt.exclude)
    items = Items()
    skipped: list[Skipped] = []
    docs, groups, _ = read_documents(s, opt, items, skipped, [])
    docs_kept = [(d, g) for d, g in zip(docs, groups, strict=True) if d]
    if not docs_kept:
        raise DataError(f"{s.root}: no text to learn a vocabulary from ({len(skipped)} file(s) skipped)")
    train = training_documents(
        [d for d, _ in docs_kept], [g for _, g in docs_kept], tuple(items.sources), opt
    )
    return fit_vocabulary(train, vocab_size)
