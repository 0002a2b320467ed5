"""Noise schedules alpha(t) (probability a sub-token is still visible) and time grids.

alpha(0) = 1 (clean), alpha(1) = 0 (all masked); w(t) = -alpha'(t) / (1 - alpha(t)) >= 0.
"""

from __future__ import annotations

import math

import torch

from engine.config import SCHEDULES, ModelConfig


class Schedule:
    """A pure (alpha, alpha') pair: linear, polynomial (1 - t)^n or cosine."""

    def __init__(self, name: str = "linear", power: float = 3.0) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")
        if power <= 0:
            raise ValueError(f"schedule power must be > 0, got {power}")
        self.name = name
        self.power = float(power)

    @classmethod
    def from_config(cls, config: ModelConfig) -> Schedule:
        """The schedule a model config describes."""
        return cls(config.schedule, config.schedule_power)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """Probability that a sub-token is still visible at time t."""
        if self.name == "linear":
            return 1.0 - t
        if self.name == "polynomial":
            return (1.0 - t) ** self.power
        return torch.cos(0.5 * math.pi * t)

    def alpha_prime(self, t: torch.Tensor) -> torch.Tensor:
        """d alpha / dt (<= 0)."""
        if self.name == "linear":
            return -torch.ones_like(t)
        if self.name == "polynomial":
            return -self.power * (1.0 - t) ** (self.power - 1.0)
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """w(t) = -alpha'(t) / (1 - alpha(t)), computed in float64 with stable forms of 1 - alpha.

        Infinite at t = 0; callers keep t > 0. Returned in t's dtype.
        """
        t64 = t.to(torch.float64)
        if self.name == "linear":
            one_minus_alpha = t64
        elif self.name == "polynomial":
            one_minus_alpha = -torch.expm1(self.power * torch.log1p(-t64))
        else:
            one_minus_alpha = 2.0 * torch.sin(0.25 * math.pi * t64) ** 2
        return (-self.alpha_prime(t64) / one_minus_alpha).to(t.dtype)

    def reveal_probability(self, t: float, s: float) -> float:
        """Posterior probability r that a masked digit at time t is revealed by time s < t."""
        a_t = float(self.alpha(torch.tensor(t, dtype=torch.float64)))
        a_s = float(self.alpha(torch.tensor(s, dtype=torch.float64)))
        if a_t >= 1.0:
            return 1.0
        return min(1.0, max(0.0, (a_s - a_t) / (1.0 - a_t)))

    def __repr__(self) -> str:
        return f"Schedule({self.name!r}, power={self.power})"


def time_grid(steps: int, warp: float = 1.0) -> torch.Tensor:
    """Times from t = 1 to t = 0 in ``steps`` steps: t_k = (1 - k/T) ** warp, shape (T+1,) float64."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    frac = 1.0 - torch.arange(steps + 1, dtype=torch.float64) / steps
    return frac**warp
