"""Embedding of partial tokens: one table per digit position, ell vectors of width D/ell concatenated."""

from __future__ import annotations

import torch
from torch import nn


class PartialTokenEmbedding(nn.Module):
    """Digits (B, L, ell) with values 0..b (b = mask) -> (B, L, D).

    Each digit position j has its own table of b + 1 rows and width D / ell; the ell vectors of a
    token are concatenated, so the backbone runs on L positions whatever ell is.
    """

    def __init__(self, base: int, ell: int, d_model: int) -> None:
        super().__init__()
        if d_model % ell != 0:
            raise ValueError(f"d_model={d_model} must be divisible by ell={ell}")
        self.base = base
        self.ell = ell
        self.table = nn.Embedding(ell * (base + 1), d_model // ell)
        self.register_buffer("offsets", torch.arange(ell) * (base + 1), persistent=False)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Digits (B, L, ell) -> embeddings (B, L, D)."""
        emb = self.table(y + self.offsets)  # (B, L, ell, D/ell)
        return emb.flatten(-2)  # (B, L, D)


class PositionEmbedding(nn.Module):
    """Learned positions: 1-D for text; row + column + channel for images (2-D aware)."""

    def __init__(
        self, d_model: int, seq_len: int = 0, height: int = 0, width: int = 0, channels: int = 0
    ) -> None:
        super().__init__()
        self.image = height > 0
        if self.image:
            self.row = nn.Parameter(torch.randn(height, 1, 1, d_model) * 0.02)
            self.col = nn.Parameter(torch.randn(1, width, 1, d_model) * 0.02)
            self.chan = nn.Parameter(torch.randn(1, 1, channels, d_model) * 0.02)
        else:
            self.pos = nn.Parameter(torch.randn(seq_len, d_model) * 0.02)

    def forward(self) -> torch.Tensor:
        """(L, D) position vectors; images are laid out (H, W, channels) row-major."""
        if self.image:
            return (self.row + self.col + self.chan).flatten(0, 2)  # (H*W*ch, D)
        return self.pos
