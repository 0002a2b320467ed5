"""The data order: every epoch is a permutation, reads are position-addressable (resumable)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine.training.order import DataOrder, mix_seed


@given(n=st.integers(1, 40), batch=st.integers(1, 17), seed=st.integers(0, 2**40))
def test_epochs_are_permutations_and_positions_are_stable(n: int, batch: int, seed: int) -> None:
    index = np.arange(100, 100 + n)
    order = DataOrder(index, seed)
    stream = np.concatenate([order.take(p, batch) for p in range(0, 3 * n + batch, batch)])
    for epoch in range(3):
        assert sorted(stream[epoch * n : (epoch + 1) * n].tolist()) == index.tolist()
    fresh = DataOrder(index, seed)  # a resumed run: jump straight to a position
    start = (2 * n) // 3
    assert np.array_equal(fresh.take(start, batch), stream[start : start + batch][:batch])


def test_seeds_differ_per_part() -> None:
    seeds = {mix_seed(0, step, micro, rank) for step in range(50) for micro in range(3) for rank in range(4)}
    assert len(seeds) == 600 and all(0 <= s < 2**63 for s in seeds)
