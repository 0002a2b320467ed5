"""Forward process q(y_t | y_0): each sub-token independently kept with probability alpha_t."""

from __future__ import annotations

import torch

from engine.prime.codec import Codec
from engine.prime.schedule import Schedule


def add_noise(
    y0: torch.Tensor, t: torch.Tensor, schedule: Schedule, codec: Codec, generator: torch.Generator | None
) -> torch.Tensor:
    """Mask digits of clean y0 (B, L, ell) at times t (B,), returning y_t (B, L, ell).

    Uses only ``generator`` for randomness.
    """
    alpha = schedule.alpha(t.to(torch.float32)).view(-1, 1, 1)  # (B, 1, 1)
    device = generator.device if generator is not None else y0.device
    u = torch.rand(y0.shape, generator=generator, device=device).to(y0.device)  # (B, L, ell)
    return torch.where(u < alpha, y0, torch.full_like(y0, codec.mask))


def stratified_times(batch: int, generator: torch.Generator | None, eps: float = 1e-4) -> torch.Tensor:
    """One t per item, stratified over the batch: t_i ~ U((i + u) / B), clipped to [eps, 1]. (B,)."""
    u = torch.rand((), generator=generator).item()
    t = (torch.arange(batch, dtype=torch.float64) + u) / batch
    return t.clamp(min=eps, max=1.0).to(torch.float32)
