"""Token data held in memory, its deterministic train/validation split and its fingerprint.

All data sets (image folders, text files, in-memory arrays) end up as a :class:`TokenData`: a
compact (N, L) array of tokens (uint8 for C <= 256) plus, per item, the source it came from.
Decoding once up front keeps training I/O-free and means a file that vanishes after loading
cannot break a run.

The split is by source (file), so two items of one file never straddle train and validation:
each source gets a pseudo-random number from sha256(seed, name), stable when other files are
added, and goes to validation when it falls below ``val_fraction`` (at least one source goes to
each side when there are two or more). A data set with a single source (one text file, say) is
split by position instead: the last ``val_fraction`` of its items (a contiguous tail, so
neighbouring text does not leak) is held out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.config import ModelConfig
from engine.data.files import DataError


@dataclass(frozen=True, eq=False)
class TokenData:
    """Preprocessed data: ``tokens`` (N, L), ``groups`` (N,) source index, split indices.

    ``fingerprint`` hashes the tokens, the split and C, so a resumed run can check that it sees
    exactly the data (and preprocessing, and split) it started with.
    """

    tokens: np.ndarray
    groups: np.ndarray
    sources: tuple[str, ...]
    num_classes: int
    modality: str
    train_index: np.ndarray
    val_index: np.ndarray
    fingerprint: str
    description: dict[str, Any] = field(default_factory=dict)
    # the BPE vocabulary the tokens are ids of (text data tokenized by a learned vocabulary)
    vocabulary: Any = None

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_len(self) -> int:
        """Tokens per item L."""
        return int(self.tokens.shape[1])

    def batch(self, index: np.ndarray | list[int]) -> torch.Tensor:
        """Items at ``index`` as an int64 tensor (B, L)."""
        return torch.from_numpy(self.tokens[np.asarray(index, dtype=np.int64)].astype(np.int64))

    def check_model(self, config: ModelConfig) -> None:
        """Raise :class:`DataError` unless these tokens fit ``config`` (modality, L, C)."""
        if self.modality != config.modality:
            raise DataError(
                f"the data is {self.modality} data but the model is for {config.modality}; "
                "choose data of the model's kind or another model"
            )
        if self.seq_len != config.seq_length:
            raise DataError(
                f"data items have {self.seq_len} tokens but the model expects {config.seq_length}"
            )
        top = int(self.tokens.max()) if len(self) else 0
        if top >= config.num_classes:
            raise DataError(f"data holds token {top} but the model has only {config.num_classes} classes")

    def summary_dict(self) -> dict[str, Any]:
        """JSON-ready description (for model cards and reports)."""
        return {
            **self.description,
            "modality": self.modality,
            "items": len(self),
            "train_items": int(len(self.train_index)),
            "val_items": int(len(self.val_index)),
            "sources": len(self.sources),
            "seq_len": self.seq_len,
            "num_classes": self.num_classes,
            "fingerprint": self.fingerprint,
        }


def _unit_hash(seed: int, name: str) -> float:
    digest = hashlib.sha256(f"{seed}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_indices(
    groups: np.ndarray, sources: tuple[str, ...], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train_index, val_index) by source; see the module docstring."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(groups)
    everything = np.arange(n, dtype=np.int64)
    if val_fraction == 0.0 or n < 2:
        return everything, np.zeros(0, dtype=np.int64)
    present = sorted(set(int(g) for g in groups))
    if len(present) == 1:
        n_val = min(n - 1, max(1, round(val_fraction * n)))
        return everything[: n - n_val], everything[n - n_val :]
    score = {g: _unit_hash(seed, sources[g]) for g in present}
    val_groups = {g for g in present if score[g] < val_fraction}
    if not val_groups:
        val_groups = {min(present, key=lambda g: score[g])}
    if len(val_groups) == len(present):
        val_groups.discard(max(present, key=lambda g: score[g]))
    is_val = np.isin(groups, sorted(val_groups))
    return everything[~is_val], everything[is_val]


def fingerprint_tokens(
    tokens: np.ndarray, train_index: np.ndarray, val_index: np.ndarray, num_classes: int
) -> str:
    """sha256 (first 16 hex digits) of the tokens, their shape, C and the split."""
    h = hashlib.sha256()
    h.update(f"{tokens.shape}|{tokens.dtype}|{num_classes}".encode())
    h.update(memoryview(np.ascontiguousarray(tokens)).cast("B"))  # no copy of the tokens
    h.update(np.ascontiguousarray(train_index, dtype=np.int64).tobytes())
    h.update(b"|")
    h.update(np.ascontiguousarray(val_index, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def make_token_data(
    tokens: np.ndarray,
    groups: np.ndarray,
    sources: tuple[str, ...],
    *,
    num_classes: int,
    modality: str,
    val_fraction: float,
    seed: int,
    description: dict[str, Any] | None = None,
    val_sources: frozenset[str] | None = None,
    vocabulary: Any = None,
) -> TokenData:
    """Split, fingerprint and wrap preprocessed tokens (N, L).

    ``val_sources`` (names from ``sources``) fixes the held-out sources instead of the seeded split.
    """
    tokens = np.ascontiguousarray(tokens)
    groups = np.asarray(groups, dtype=np.int64)
    if val_sources is not None:
        unknown = sorted(set(val_sources) - set(sources))
        if unknown:
            raise DataError(f"val_sources not among the sources: {', '.join(unknown)}")
        held = np.isin(groups, [i for i, name in enumerate(sources) if name in val_sources])
        everything = np.arange(len(groups), dtype=np.int64)
        train_index, val_index = everything[~held], everything[held]
    else:
        train_index, val_index = split_indices(groups, sources, val_fraction, seed)
    return TokenData(
        tokens=tokens,
        groups=groups,
        sources=sources,
        num_classes=num_classes,
        modality=modality,
        train_index=train_index,
        val_index=val_index,
        fingerprint=fingerprint_tokens(tokens, train_index, val_index, num_classes),
        description=dict(description or {}),
        vocabulary=vocabulary,
    )


def array_dataset(
    tokens: np.ndarray | torch.Tensor,
    num_classes: int,
    *,
    modality: str = "image",
    groups: np.ndarray | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    name: str = "array",
) -> TokenData:
    """An in-memory data set from tokens (N, L) in 0..C-1 (e.g. sklearn digits, tests).

    Without ``groups`` every item is its own source, so the split is by item.
    """
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.detach().cpu().numpy()
    arr = np.asarray(tokens)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DataError(f"array data must have shape (N, L) with N, L >= 1, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"array data must hold integer tokens, got {arr.dtype}")
    if int(arr.min()) < 0 or int(arr.max()) >= num_classes:
        raise DataError(
            f"array tokens must be in 0..{num_classes - 1}, got {int(arr.min())}..{int(arr.max())}"
        )
    arr = arr.astype(np.uint8 if num_classes <= 256 else np.uint16)
    if groups is None:
        groups = np.arange(arr.shape[0], dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    if groups.shape != (arr.shape[0],):
        raise DataError(f"groups must have shape ({arr.shape[0]},), got {groups.shape}")
    sources = tuple(f"{name}[{g}]" for g in range(int(groups.max()) + 1))
    return make_token_data(
        arr,
        groups,
        sources,
        num_classes=num_classes,
        modality=modality,
        val_fraction=val_fraction,
        seed=seed,
        description={"source": name, "kind": "array"},
    )
