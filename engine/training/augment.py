"""Shift augmentation for image models that are told the shift (non-leaking augmentation).

A small data set (1,500 training digits) is seen hundreds of times in a run. Shifting some
training images by a pixel gives the network more distinct images to learn shapes from; because
the model is told each image's shift (:class:`engine.models.transformer.PrimeModel`'s
``shift_embed``), the shifted images do not leak into samples, which ask for shift (0, 0).
"""

from __future__ import annotations

import torch

from engine.config import ModelConfig


def shift_images(
    x0: torch.Tensor, config: ModelConfig, p: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shift each image of ``x0`` (B, L) with probability ``p`` by (dy, dx) in [-s, s]^2, not (0, 0).

    Pixels shifted in from outside repeat the edge (replicate fill), so no value outside the
    image's own levels appears. Returns (shifted tokens (B, L), dy (B,), dx (B,)), the shifts drawn
    from ``gen`` (CPU) so that a seeded step draws the same shifts again.
    """
    s = config.augment_shift
    if s < 1:
        raise ValueError("shift augmentation needs a model with augment_shift >= 1")
    B = x0.shape[0]
    H, W, C = config.height, config.width, config.channels
    side = 2 * s + 1
    # a shift other than (0, 0): the non-centre entries of the (2s+1)^2 grid, uniformly
    pick = torch.randint(0, side * side - 1, (B,), generator=gen)
    pick = pick + (pick >= (side * side) // 2).long()  # skip the centre
    keep = torch.rand(B, generator=gen) >= p
    dy, dx = pick // side - s, pick % side - s
    dy, dx = dy.masked_fill(keep, 0), dx.masked_fill(keep, 0)
    rows = (torch.arange(H)[None, :] - dy[:, None]).clamp(0, H - 1)  # (B, H): source row of each row
    cols = (torch.arange(W)[None, :] - dx[:, None]).clamp(0, W - 1)  # (B, W)
    source = (rows[:, :, None] * W + cols[:, None, :]).reshape(B, H * W)  # (B, H*W) source pixel
    images = x0.view(B, H * W, C)
    index = source.to(x0.device)[:, :, None].expand(B, H * W, C)
    shifted = torch.gather(images, 1, index).reshape(B, H * W * C)
    return shifted, dy.to(x0.device), dx.to(x0.device)
