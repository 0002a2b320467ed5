"""In-memory arrays, the deterministic split by source, and fingerprints."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import ModelConfig
from engine.data import DataError, array_dataset, split_indices


def test_array_dataset_split_is_deterministic_and_disjoint() -> None:
    tokens = np.random.default_rng(0).integers(0, 4, (50, 6))
    a = array_dataset(tokens, 4, val_fraction=0.2, seed=3)
    b = array_dataset(tokens, 4, val_fraction=0.2, seed=3)
    c = array_dataset(tokens, 4, val_fraction=0.2, seed=4)
    assert np.array_equal(a.val_index, b.val_index) and a.fingerprint == b.fingerprint
    assert not np.array_equal(a.val_index, c.val_index) and a.fingerprint != c.fingerprint
    assert set(a.train_index) | set(a.val_index) == set(range(50))
    assert not set(a.train_index) & set(a.val_index)
    assert 3 <= len(a.val_index) <= 20


def test_split_by_source_keeps_groups_together_and_is_stable_when_sources_are_added() -> None:
    groups = np.repeat(np.arange(10), 3)
    names = tuple(f"f{i}.txt" for i in range(10))
    train, val = split_indices(groups, names, 0.3, seed=0)
    for g in range(10):
        members = set(np.flatnonzero(groups == g))
        assert members <= set(train) or members <= set(val)
    more = np.repeat(np.arange(12), 3)
    _, val2 = split_indices(more, (*names, "new1.txt", "new2.txt"), 0.3, seed=0)
    assert set(val) <= set(val2)  # adding files never moves an old file between the sides


def test_every_side_gets_a_source() -> None:
    groups = np.arange(2)
    train, val = split_indices(groups, ("a", "b"), 0.01, seed=0)
    assert len(train) == 1 and len(val) == 1


def test_bad_arrays_and_model_mismatch() -> None:
    with pytest.raises(DataError, match="0..3"):
        array_dataset(np.array([[0, 4]]), 4)
    with pytest.raises(DataError, match="shape"):
        array_dataset(np.zeros(5, dtype=np.int64), 4)
    data = array_dataset(np.zeros((3, 5), dtype=np.int64), 4)
    cfg = ModelConfig(modality="image", num_classes=4, height=2, width=2, channels=1, d_model=16, n_heads=2)
    with pytest.raises(DataError, match="5 tokens but the model expects 4"):
        data.check_model(cfg)


def test_named_validation_sources_are_held_out_and_fingerprinted() -> None:
    from engine.data.dataset import make_token_data

    tokens = np.arange(12, dtype=np.uint8).reshape(6, 2)
    groups = np.array([0, 0, 1, 1, 2, 2])
    data = make_token_data(
        tokens,
        groups,
        ("Gen", "Ruth", "Rev"),
        num_classes=16,
        modality="text",
        val_fraction=0.0,
        seed=0,
        val_sources=frozenset({"Ruth"}),
    )
    assert data.val_index.tolist() == [2, 3] and data.train_index.tolist() == [0, 1, 4, 5]
    other = make_token_data(
        tokens, groups, ("Gen", "Ruth", "Rev"), num_classes=16, modality="text", val_fraction=0.0, seed=0
    )
    assert other.fingerprint != data.fingerprint
    with pytest.raises(DataError, match="Exod"):
        make_token_data(
            tokens,
            groups,
            ("Gen", "Ruth", "Rev"),
            num_classes=16,
            modality="text",
            val_fraction=0.0,
            seed=0,
            val_sources=frozenset({"Exod"}),
        )
