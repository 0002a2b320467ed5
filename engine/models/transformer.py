"""A bidirectional transformer over L token positions with a C-way head (time-independent)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import ModelConfig
from engine.models.embedding import PartialTokenEmbedding, PositionEmbedding
from engine.prime.codec import Codec
from engine.prime.schedule import Schedule
from engine.tokenizer import Tokenizer, tokenizer_of


def rotary_tables(length: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (L, head_dim / 2) of the rotary angles position * base^(-2i / head_dim)."""
    half = head_dim // 2
    inv_freq = base ** (-torch.arange(half, dtype=torch.float64) / half)  # (half,)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * inv_freq[None]  # (L, half)
    return angles.cos().float(), angles.sin().float()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + half) of x (B, heads, L, dh) by each position's angles.

    q . k after rotation depends on positions only through their offset, so attention sees
    "the byte two to the left" directly rather than learning it from absolute vectors.
    """
    half = x.shape[-1] // 2
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # (L, half)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Block(nn.Module):
    """Pre-norm self-attention (scaled_dot_product_attention) and GELU MLP."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(), nn.Linear(mlp_ratio * d_model, d_model)
        )
        self.dropout = dropout

    def forward(
        self, h: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """(B, L, D) -> (B, L, D); ``rotary`` = (cos, sin) rotates queries and keys."""
        B, L, D = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(B, L, 3, self.n_heads, D // self.n_heads).unbind(2)
        # (B, heads, L, D/heads)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        p = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, heads, L, D/heads)
        out = self.proj(att.transpose(1, 2).reshape(B, L, D))
        h = h + (F.dropout(out, p, True) if p > 0 else out)
        out = self.mlp(self.norm2(h))
        return h + (F.dropout(out, p, True) if p > 0 else out)


class PrimeModel(nn.Module):
    """Partial-token embedding + transformer + C-way head. ``forward`` returns raw logits.

    The filter (carry-over) is applied by :func:`engine.prime.filter.filtered_log_probs`, which
    every consumer (sampler, objectives) calls.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.modality == "text" and config.tokenizer == "bpe" and config.vocabulary is None:
            raise ValueError(
                "this BPE text model config carries no vocabulary (it was read from a header alone); "
                "load the model file, or learn a vocabulary for the data"
            )
        self.config = config
        self.codec = Codec.from_config(config)
        self.schedule = Schedule.from_config(config)
        D = config.d_model
        self.embed = PartialTokenEmbedding(self.codec.base, config.ell, D)
        self.rotary = config.positions == "rotary"
        if self.rotary:
            cos, sin = rotary_tables(config.seq_length, D // config.n_heads)
            self.register_buffer("rotary_cos", cos, persistent=False)  # (L, dh/2)
            self.register_buffer("rotary_sin", sin, persistent=False)
        else:
            self.pos = PositionEmbedding(D, config.seq_len, config.height, config.width, config.channels)
        self.augment_shift = config.augment_shift
        if self.augment_shift:  # one vector per pixel shift (dy, dx), added at every position
            self.shift_embed = nn.Embedding((2 * self.augment_shift + 1) ** 2, D)
        self.blocks = nn.ModuleList(
            Block(D, config.n_heads, config.mlp_ratio, config.dropout) for _ in range(config.n_layers)
        )
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, config.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if p.dim() == 2 and "embed" not in name and "pos" not in name:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        # scale residual projections by depth (GPT-2 style)
        for block in self.blocks:
            nn.init.normal_(block.proj.weight, std=0.02 / (2 * len(self.blocks)) ** 0.5)
            nn.init.normal_(block.mlp[2].weight, std=0.02 / (2 * len(self.blocks)) ** 0.5)
        if self.augment_shift:  # starts as the plain model: no shift is told apart yet
            nn.init.zeros_(self.shift_embed.weight)

    def shift_index(self, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
        """The conditioning index of pixel shifts (dy, dx), each in [-s, s]; (0, 0) is the real image."""
        s = self.augment_shift
        return (dy + s) * (2 * s + 1) + (dx + s)

    @property
    def tokenizer(self) -> Tokenizer:
        """How this model's text tokens map to bytes (bytes for byte models and images)."""
        return tokenizer_of(self.config)

    @property
    def time_conditioned(self) -> bool:
        """False: the network ignores t, so the sampler may cache across idle steps."""
        return False

    def forward(self, y_t: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Digits (B, L, ell) int64 -> raw logits (B, L, C).

        ``shift`` (B,) int64, for a model with ``augment_shift``: the :meth:`shift_index` each
        image was shifted by in training; None (sampling, evaluation) asks for unshifted images.
        """
        L = self.config.seq_length
        if y_t.dim() != 3 or y_t.shape[1] != L or y_t.shape[2] != self.config.ell:
            raise ValueError(f"expected digits of shape (B, {L}, {self.config.ell}), got {tuple(y_t.shape)}")
        if self.rotary:
            h, rotary = self.embed(y_t), (self.rotary_cos, self.rotary_sin)  # (B, L, D)
        else:
            h, rotary = self.embed(y_t) + self.pos(), None
        if self.augment_shift:
            if shift is None:
                zero = torch.zeros(y_t.shape[0], dtype=torch.long, device=y_t.device)
                shift = self.shift_index(zero, zero)
            h = h + self.shift_embed(shift)[:, None, :]
        elif shift is not None:
            raise ValueError("this model was not trained with shift conditioning (augment_shift = 0)")
        for block in self.blocks:
            h = block(h, rotary)
        return self.head(self.norm(h))  # (B, L, C)

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())
