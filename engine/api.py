"""Seam vocabulary shared by the engine, the CLI and the studio.

Everything that crosses the engine/studio boundary is defined here: the cancel token, the
sampling request, and the frozen snapshots a sampling generator yields and returns.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

import torch

REVEAL_MODES = ("joint", "marginal")
# which masked digits a step reveals: see engine/sampling/strategies.py
STRATEGIES = ("ancestral", "confidence", "margin", "entropy", "threshold")
# what the CLI and the studio use unless told otherwise, chosen by `prime bench quality`
# (docs/SAMPLING.md); SampleRequest itself defaults to the model's own (ancestral) sampler
DEFAULT_STRATEGY = "ancestral"


class CancelToken:
    """Thread-safe flag checked by long-running generators between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop at its next step boundary."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()


@dataclass(frozen=True)
class Condition:
    """Sub-tokens fixed during sampling: never masked, never changed.

    ``fixed`` (bool) and ``digits`` (int64) have shape (L, ell) for all samples or
    (N, L, ell) per sample. Digits where ``fixed`` is False are ignored.
    Build them with the helpers in :mod:`engine.sampling.conditioning`.
    """

    fixed: torch.Tensor
    digits: torch.Tensor

    def __post_init__(self) -> None:
        if self.fixed.dtype != torch.bool:
            raise ValueError("Condition.fixed must be a bool tensor")
        if self.fixed.shape != self.digits.shape or self.fixed.dim() not in (2, 3):
            raise ValueError(
                f"Condition.fixed {tuple(self.fixed.shape)} and digits {tuple(self.digits.shape)} "
                "must share a shape (L, ell) or (N, L, ell)"
            )


@dataclass(frozen=True)
class SampleRequest:
    """How to sample. All randomness comes from ``seed`` through one torch.Generator.

    temperature: at t = 1; ``temperature_end`` (if set) is the temperature at t = 0, linear in t.
    top_k: 0 = off. top_p: 1.0 = off; keeps the smallest set whose mass reaches p, including the
    token that crosses it. reveal: "joint" (draw a token, reveal its digits) or "marginal" (draw each
    revealed digit from its marginal). corrector: fraction of free visible digits re-masked and
    redrawn after each predictor step except the last (0 = off). corrector_start: the corrector works
    only after steps that end at a time t <= this (time runs from 1 to 0): 1 = after every step,
    0.5 = in the second half of the run's time. time_warp: grid t_k = (k/T)**warp.
    preview_every: a SampleStep carries the state every this many steps (and always the last).
    record_predictions: keep the model's predicted clean sample (argmax) at every step, and the
    confidence of every revealed digit (``Trajectory.reveal_confidence``).
    strategy: which masked digits a step reveals. "ancestral" (default) is the model's own
    sampler: each digit is revealed with probability r, the process the valid bound describes.
    "confidence", "margin" and "entropy" reveal the n most certain digits (n follows the
    schedule's expected reveals); "threshold" reveals every digit whose confidence reaches
    ``threshold`` (at least one per sample and step). These four are not the ancestral sampler.
    threshold: tau in [0, 1] for strategy "threshold" (ignored otherwise).
    """

    num_samples: int = 1
    steps: int = 64
    seed: int = 0
    temperature: float = 1.0
    temperature_end: float | None = None
    top_k: int = 0
    top_p: float = 1.0
    reveal: str = "joint"
    cache: bool = True
    corrector: float = 0.0
    corrector_start: float = 1.0
    time_warp: float = 1.0
    preview_every: int = 1
    record_predictions: bool = False
    condition: Condition | None = None
    strategy: str = "ancestral"
    threshold: float = 0.9

    def __post_init__(self) -> None:
        if not 1 <= self.num_samples <= 4096:
            raise ValueError(f"num_samples must be in 1..4096, got {self.num_samples}")
        if not 1 <= self.steps <= 100_000:
            raise ValueError(f"steps must be in 1..100000, got {self.steps}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be in 0..2**63-1, got {self.seed}")
        for name in ("temperature", "temperature_end"):
            value = getattr(self, name)
            if value is not None and not (0.0 < value <= 100.0):
                raise ValueError(f"{name} must be in (0, 100], got {value}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if self.reveal not in REVEAL_MODES:
            raise ValueError(f"reveal must be one of {REVEAL_MODES}, got {self.reveal!r}")
        if not 0.0 <= self.corrector < 1.0:
            raise ValueError(f"corrector must be in [0, 1), got {self.corrector}")
        if not 0.0 < self.corrector_start <= 1.0:
            raise ValueError(f"corrector_start must be in (0, 1], got {self.corrector_start}")
        if not 0.1 <= self.time_warp <= 10.0:
            raise ValueError(f"time_warp must be in [0.1, 10], got {self.time_warp}")
        if self.preview_every < 1:
            raise ValueError(f"preview_every must be >= 1, got {self.preview_every}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")

    def replace(self, **changes: Any) -> SampleRequest:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (the condition is summarised, not serialised)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "condition"}
        out["conditioned"] = self.condition is not None
        return out


# Sampler settings a model file may recommend (model card key "sampler"): what its recipe measured
# as the best default for that model. `prime generate`, the studio and the benches start from them;
# every flag or field the user sets overrides them.
RECOMMENDABLE_SETTINGS: dict[str, tuple[type, ...]] = {
    "steps": (int,),
    "temperature": (int, float),
    "temperature_end": (int, float),
    "top_k": (int,),
    "top_p": (int, float),
    "reveal": (str,),
    "strategy": (str,),
    "threshold": (int, float),
    "corrector": (int, float),
    "corrector_start": (int, float),
    "time_warp": (int, float),
}


def recommended_settings(card: Any) -> dict[str, Any]:
    """The sampler settings a model card recommends under ``"sampler"`` ({} when it names none).

    Raises:
        ValueError: naming the problem: the entry is not an object, names an unknown setting, has
            a value of the wrong type, or one :class:`SampleRequest` refuses (e.g. corrector 2).
    """
    if not isinstance(card, dict) or card.get("sampler") is None:
        return {}
    given = card["sampler"]
    if not isinstance(given, dict):
        raise ValueError(f"the model's recommended sampler settings are not an object: {given!r:.80}")
    out: dict[str, Any] = {}
    for key, value in given.items():
        types = RECOMMENDABLE_SETTINGS.get(key)
        if types is None:
            known = ", ".join(RECOMMENDABLE_SETTINGS)
            raise ValueError(f"the model recommends an unknown sampler setting {key!r:.40} (known: {known})")
        if isinstance(value, bool) or not isinstance(value, types):
            raise ValueError(f"the model's recommended {key} has the wrong type: {value!r:.40}")
        out[key] = float(value) if float in types else value
    SampleRequest(**out)  # the ranges: raises ValueError naming the setting
    return out


def describe_settings(settings: dict[str, Any]) -> str:
    """``{"corrector": 0.2, "top_p": 0.98}`` -> ``"corrector 0.2, top-p 0.98"`` (for messages)."""
    return ", ".join(
        f"{key.replace('_', '-')} {value:g}"
        if isinstance(value, float)
        else f"{key.replace('_', '-')} {value}"
        for key, value in settings.items()
    )


@dataclass(frozen=True)
class SampleStep:
    """One denoising step, yielded after it is taken. Tensors are detached CPU copies.

    step: 1..steps (the state after this step); t, s: the step goes from time t to s < t.
    revealed: (N,) digits revealed this step per sample; idle: (N,) bool, nothing changed.
    nfe: (N,) network calls so far per sample. state: (N, L, ell) digits (mask = base) or None
    when this is not a preview step. prediction: (N, L) predicted clean tokens or None.
    """

    step: int
    steps: int
    t: float
    s: float
    revealed: torch.Tensor
    idle: torch.Tensor
    nfe: torch.Tensor
    state: torch.Tensor | None
    prediction: torch.Tensor | None
    seconds: float


@dataclass(frozen=True)
class SampleResult:
    """What a sampling run returns (also when cancelled: then ``cancelled`` is True).

    tokens: (N, L) int64, -1 where a token is not fully decided (only after a cancel).
    trajectory: the full record (an :class:`engine.sampling.Trajectory`; typed ``Any`` here so the
    seam vocabulary imports no sampler); nfe/idle_steps: per sample lists; seconds: wall time.
    """

    tokens: torch.Tensor
    trajectory: Any
    nfe: list[int]
    idle_steps: list[int]
    seconds: float
    cancelled: bool
    steps_done: int
    request: SampleRequest
