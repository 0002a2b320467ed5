"""Optimiser, learning-rate schedule and EMA weights."""

from __future__ import annotations

import math

import torch

from engine.models import PrimeModel
from engine.training.config import TrainConfig


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """LR for optimiser step ``step`` (1-based): linear warm-up, then constant or cosine."""
    if cfg.warmup and step <= cfg.warmup:
        return cfg.lr * step / cfg.warmup
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(1, cfg.steps - cfg.warmup)
    progress = min(1.0, (step - cfg.warmup) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: PrimeModel, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay only on matrices outside the embeddings."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n and "pos" not in n]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


@torch.no_grad()
def ema_update(ema: PrimeModel, model: PrimeModel, decay: float, step: int) -> None:
    """ema <- ema + (1 - d) (model - ema) with d = min(decay, (1 + step) / (10 + step))."""
    d = min(decay, (1 + step) / (10 + step))
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - d)
    for e, p in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(p)
