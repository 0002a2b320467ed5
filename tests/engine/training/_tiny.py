"""Tiny configs and data for training tests (each step takes milliseconds)."""

from __future__ import annotations

import numpy as np

from engine.config import ModelConfig
from engine.data import TokenData, array_dataset
from engine.training import TrainConfig

IMG = ModelConfig(
    modality="image", num_classes=4, ell=2, height=2, width=4, channels=1, d_model=16, n_layers=1, n_heads=2
)

FAST = TrainConfig(
    steps=6,
    batch_size=8,
    lr=3e-3,
    warmup=2,
    eval_every=0,
    eval_batches=2,
    preview_every=0,
    checkpoint_every=2,
    preview_steps=4,
    preview_samples=2,
    device="cpu",
)


def pattern_data(n: int = 64, seed: int = 0) -> TokenData:
    """Structured 2x4 images: a skewed random level repeated along each row (low entropy, learnable)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(4, size=(n, 2, 1), p=[0.7, 0.1, 0.1, 0.1])
    tokens = np.repeat(rows, 4, axis=2).reshape(n, 8)
    return array_dataset(tokens, 4, val_fraction=0.25, seed=0)


def uniform_data(n: int, seed: int) -> TokenData:
    """Independent uniform tokens: entropy exactly log(4) nats per token."""
    rng = np.random.default_rng(seed)
    return array_dataset(rng.integers(0, 4, (n, 8)), 4, val_fraction=0.5, seed=seed)
