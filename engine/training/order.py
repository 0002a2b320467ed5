"""Where each step's items and noise come from: seeded, position-addressable, so resumable.

Epoch e of the data order is a permutation of the training items seeded by (seed, e); global
position p is item p mod N of epoch p // N. The noise of step k, micro-batch m on rank r comes from
a generator seeded by mix_seed(seed, k, m, r). A run resumed at step k therefore sees exactly the
items and noise an uninterrupted run would, without storing any sampler state.
"""

from __future__ import annotations

import numpy as np
import torch

_MIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93)


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (deterministic, well spread)."""
    h = 0
    for i, p in enumerate(parts):
        h = (h ^ (int(p) + _MIX[i % 4])) * _MIX[(i + 1) % 4] % 2**64
        h ^= h >> 31
    return h % 2**63


class DataOrder:
    """Item order: epoch e is a permutation of the training items seeded by (seed, e)."""

    def __init__(self, index: np.ndarray, seed: int) -> None:
        self.index = index
        self.seed = seed
        self._epoch = -1
        self._perm = np.zeros(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(mix_seed(self.seed, epoch, 7))
            self._perm = self.index[torch.randperm(len(self.index), generator=g).numpy()]
            self._epoch = epoch
        return self._perm

    def take(self, position: int, count: int) -> np.ndarray:
        """Items at global positions position .. position + count - 1 (crossing epochs)."""
        n = len(self.index)
        out = []
        while count > 0:
            epoch, offset = divmod(position, n)
            k = min(count, n - offset)
            out.append(self._permutation(epoch)[offset : offset + k])
            position += k
            count -= k
        return np.concatenate(out)
