"""What training yields and returns: frozen, CPU-side, JSON-ready snapshots."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.api import CancelToken

EVENT_KINDS = ("start", "step", "eval", "preview", "checkpoint", "done", "cancelled")
LN2 = math.log(2.0)


class TrainingError(ValueError):
    """Training cannot start or go on; the message says why and what to do."""


class TrainCancelToken(CancelToken):
    """A cancel token that also says what the stop means: ``cancel(save=True)`` = stop and save.

    The trainer reads :attr:`save_requested` when it stops, so the intent may be decided at the
    moment of cancelling (``iter_train(save_on_cancel=True)`` fixes it when the run starts).
    """

    def __init__(self) -> None:
        super().__init__()
        self._save = False

    def cancel(self, save: bool = False) -> None:
        """Stop after the current step; with ``save`` also evaluate and write the model."""
        self._save = self._save or save
        super().cancel()

    @property
    def save_requested(self) -> bool:
        """True once ``cancel(save=True)`` was called."""
        return self._save


@dataclass(frozen=True)
class EvalResult:
    """The valid bound (docs/METHOD.md §4) on held-out items, with its Monte-Carlo standard error.

    A token is one sub-pixel (one channel value) or one byte, so bits per dimension equals bits
    per token here. perplexity = exp(nats per token), so it too is an upper bound. The standard
    error treats the per-item estimates as independent; with t stratified over the items it is
    slightly conservative.
    """

    nats_per_token: float
    stderr_nats_per_token: float
    items: int
    samples: int
    split: str
    weights: str = "model"
    how: str = ""

    @property
    def bits_per_token(self) -> float:
        """nats per token / ln 2."""
        return self.nats_per_token / LN2

    @property
    def bits_per_dim(self) -> float:
        """Bits per sub-pixel or per byte (= bits per token)."""
        return self.bits_per_token

    @property
    def stderr_bits_per_dim(self) -> float:
        """Standard error of :attr:`bits_per_dim`."""
        return self.stderr_nats_per_token / LN2

    @property
    def perplexity(self) -> float:
        """exp(nats per token)."""
        return math.exp(min(self.nats_per_token, 700.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, all units (a standard error that cannot be estimated, from one item, is None)."""
        out = {
            "measure": "valid_bound",
            "nats_per_token": self.nats_per_token,
            "bits_per_token": self.bits_per_token,
            "bits_per_dim": self.bits_per_dim,
            "perplexity": self.perplexity,
            "stderr_nats_per_token": self.stderr_nats_per_token,
            "stderr_bits_per_dim": self.stderr_bits_per_dim,
            "items": self.items,
            "samples": self.samples,
            "split": self.split,
            "weights": self.weights,
            "how": self.how,
        }
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}

    def line(self) -> str:
        """One line for a terminal."""
        se = f"{self.stderr_bits_per_dim:.4f}" if math.isfinite(self.stderr_bits_per_dim) else "n/a"
        return (
            f"valid bound {self.bits_per_dim:.4f} ± {se} bits/dim "
            f"({self.nats_per_token:.4f} nats/token, perplexity <= {self.perplexity:.3f}; "
            f"{self.items} {self.split} items, {self.weights} weights)"
        )


@dataclass(frozen=True)
class TrainEvent:
    """One training event. Fields that do not apply to a kind are None.

    kind: start | step | eval | preview | checkpoint | done | cancelled. step: optimiser steps
    done so far (of ``steps``). loss: the training objective's value in nats per token (the
    ``objective`` names which; "surrogate" is never a likelihood). eval: the valid bound.
    preview: sample tokens (N, L) int64 drawn with a fixed seed. checkpoint: path written.
    """

    kind: str
    step: int
    steps: int
    objective: str = ""
    loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    eval: EvalResult | None = None
    preview: torch.Tensor | None = field(default=None, repr=False)
    checkpoint: str | None = None
    message: str = ""
    info: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the CLI's ``--json`` lines)."""
        out: dict[str, Any] = {"kind": self.kind, "step": self.step, "steps": self.steps}
        for name in (
            "objective",
            "loss",
            "lr",
            "grad_norm",
            "tokens_per_s",
            "elapsed_s",
            "eta_s",
            "checkpoint",
        ):
            value = getattr(self, name)
            if value not in (None, ""):
                out[name] = value
        if self.eval is not None:
            out["eval"] = self.eval.to_dict()
        if self.preview is not None:
            out["preview"] = self.preview.tolist()
        if self.message:
            out["message"] = self.message
        if self.info is not None:
            out["info"] = self.info
        return out


@dataclass(frozen=True)
class TrainSummary:
    """What a training run returns (also when cancelled).

    ``model`` is the trained module (EMA weights when EMA is on), left on the training device;
    ``model_path`` is None when no model file was written (cancelled, or not rank 0).
    """

    steps_done: int
    steps: int
    cancelled: bool
    model_path: str | None
    checkpoint_path: str | None
    final_eval: EvalResult | None
    wall_s: float
    tokens_seen: int
    card: dict[str, Any] = field(default_factory=dict)
    model: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (without the model)."""
        return {
            "steps_done": self.steps_done,
            "steps": self.steps,
            "cancelled": self.cancelled,
            "model_path": self.model_path,
            "checkpoint_path": self.checkpoint_path,
            "final_eval": self.final_eval.to_dict() if self.final_eval else None,
            "wall_s": self.wall_s,
            "tokens_seen": self.tokens_seen,
        }
