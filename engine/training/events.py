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

    Images: a token is one sub-pixel (one channel value), so bits per dimension = bits per token.
    Text: a token is a byte or a BPE vocabulary entry; ``bits_per_byte`` divides the summed bound
    by the UTF-8 bytes the evaluated items decode to (padding included), so byte and token models
    are compared on the same text (for byte models it equals bits per token). perplexity =
    exp(nats per token), an upper bound like the bound itself. The standard errors treat the
    per-item estimates as independent; with t stratified over the items they are slightly
    conservative.
    """

    nats_per_token: float
    stderr_nats_per_token: float
    items: int
    samples: int
    split: str
    weights: str = "model"
    how: str = ""
    modality: str = "image"
    # text only (None for images): the bound per UTF-8 byte of the evaluated items' text
    bits_per_byte: float | None = None
    stderr_bits_per_byte: float | None = None
    bytes_per_token: float | None = None  # UTF-8 bytes the evaluated tokens decode to, per token
    tokenizer: str = ""  # "bytes" or "bpe" for text

    @property
    def bits_per_token(self) -> float:
        """nats per token / ln 2."""
        return self.nats_per_token / LN2

    @property
    def stderr_bits_per_token(self) -> float:
        """Standard error of :attr:`bits_per_token`."""
        return self.stderr_nats_per_token / LN2

    @property
    def bits_per_dim(self) -> float:
        """Bits per sub-pixel (images) or per token (text); the same number as bits per token."""
        return self.bits_per_token

    @property
    def stderr_bits_per_dim(self) -> float:
        """Standard error of :attr:`bits_per_dim`."""
        return self.stderr_bits_per_token

    @property
    def perplexity(self) -> float:
        """exp(nats per token): an upper bound on the per-token perplexity."""
        return math.exp(min(self.nats_per_token, 700.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, all units (a standard error that cannot be estimated, from one item, is None)."""
        out = {
            "measure": "valid_bound",
            "modality": self.modality,
            "nats_per_token": self.nats_per_token,
            "bits_per_token": self.bits_per_token,
            "bits_per_dim": self.bits_per_dim,
            "perplexity": self.perplexity,
            "perplexity_is": "an upper bound (exp of the bound in nats per token)",
            "stderr_nats_per_token": self.stderr_nats_per_token,
            "stderr_bits_per_token": self.stderr_bits_per_token,
            "stderr_bits_per_dim": self.stderr_bits_per_dim,
            "items": self.items,
            "samples": self.samples,
            "split": self.split,
            "weights": self.weights,
            "how": self.how,
        }
        if self.modality == "text":
            out.update(
                bits_per_byte=self.bits_per_byte,
                stderr_bits_per_byte=self.stderr_bits_per_byte,
                bytes_per_token=self.bytes_per_token,
                tokenizer=self.tokenizer,
            )
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}

    def line(self) -> str:
        """One line for a terminal: bits/dim for images; bits/token and bits/byte for text."""
        se = _fmt(self.stderr_bits_per_token)
        where = f"{self.items} {self.split} items, {self.weights} weights"
        if self.modality != "text":
            return (
                f"valid bound {self.bits_per_dim:.4f} ± {se} bits/dim "
                f"({self.nats_per_token:.4f} nats/token, perplexity <= {self.perplexity:.3f}; {where})"
            )
        per_byte = ""
        if self.tokenizer == "bytes":
            per_byte = " (= bits/byte: every byte is one token)"
        elif self.bits_per_byte is not None:
            per_byte = f", {self.bits_per_byte:.4f} ± {_fmt(self.stderr_bits_per_byte)} bits/byte"
        return (
            f"valid bound {self.bits_per_token:.4f} ± {se} bits/token{per_byte} "
            f"({self.nats_per_token:.4f} nats/token, perplexity per token <= {self.perplexity:.3f}; "
            f"{where})"
        )


def _fmt(value: float | None) -> str:
    """A standard error to 4 decimals, or n/a when it could not be estimated."""
    return f"{value:.4f}" if value is not None and math.isfinite(value) else "n/a"


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
