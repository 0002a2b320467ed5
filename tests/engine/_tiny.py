"""Tiny real models for tests."""

from __future__ import annotations

import torch

from engine import ModelConfig, PrimeModel


def tiny_image_model(
    num_classes: int = 17, ell: int = 2, size: int = 4, channels: int = 1, seed: int = 0, d_model: int = 16
) -> PrimeModel:
    """A random 1-layer image model."""
    torch.manual_seed(seed)
    cfg = ModelConfig(
        modality="image",
        num_classes=num_classes,
        ell=ell,
        height=size,
        width=size,
        channels=channels,
        d_model=d_model,
        n_layers=1,
        n_heads=2,
    )
    return PrimeModel(cfg)


def tiny_text_model(ell: int = 2, seq_len: int = 16, seed: int = 0) -> PrimeModel:
    """A random 1-layer byte-level text model."""
    torch.manual_seed(seed)
    cfg = ModelConfig(
        modality="text", num_classes=256, ell=ell, seq_len=seq_len, d_model=16, n_layers=1, n_heads=2
    )
    return PrimeModel(cfg)
