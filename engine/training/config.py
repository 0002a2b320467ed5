"""TrainConfig: every training setting, frozen, with a strict ``from_dict``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from engine.data import DataOptions

TRAIN_OBJECTIVES = ("valid_bound", "masked_ce", "surrogate")
LR_SCHEDULES = ("constant", "cosine")
# Settings that decide which items each step sees and how they are noised: a resumed run must
# keep them, or it would not continue the same run.
ORDER_KEYS = ("batch_size", "grad_accum", "seed")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Validation always reports the valid bound, whatever ``objective`` trains.

    objective: "masked_ce" (unweighted cross-entropy over masked digits; default, see
    docs in :mod:`engine.training.loop`), "valid_bound" (the 1/t-weighted bound itself) or
    "surrogate" (the paper's objective: a training surrogate, never reported as a likelihood).
    lr_schedule: linear warm-up over ``warmup`` steps, then "constant" or "cosine" decay to
    ``min_lr_ratio * lr``. ema: decay of the weight average (0 = off); the EMA weights are
    evaluated and saved. eval_every / preview_every / checkpoint_every: 0 = never (a checkpoint
    is still written at the end and on cancel). bf16: None = "auto", bf16 autocast only where it
    is faster (:func:`engine.device.bf16_wins`: CUDA with bf16 support; a CPU with native bf16, by
    a short probe cached per machine; never on AVX2-only CPUs, where bf16 matmuls are emulated
    and measured about 100x slower than fp32); True / False force it on / off.
    The EMA decay warms up as min(ema, (1 + step) / (10 + step)), so short runs are not dominated
    by the initial weights. augment_p: the chance that a training image is shifted by a pixel
    (image models with ``augment_shift``, which are told the shift; 0 = off; see
    :mod:`engine.training.augment`).
    val_fraction, fit, text_mode, max_items, background, include, exclude, column, drop_flat: how
    data is found, split and preprocessed (see
    :class:`engine.data.DataOptions`). num_workers must be 0: data is decoded in memory up front.
    """

    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 100
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    grad_accum: int = 1
    ema: float = 0.999
    objective: str = "masked_ce"
    augment_p: float = 0.0
    eval_every: int = 500
    eval_batches: int = 8
    preview_every: int = 500
    preview_samples: int = 4
    preview_steps: int = 32
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"
    bf16: bool | None = None
    val_fraction: float = 0.1
    num_workers: int = 0
    fit: str = "crop"
    text_mode: str = "pad"
    max_items: int = 0
    background: str = "white"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    column: str = ""
    drop_flat: bool = False

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)

        need(1 <= self.steps <= 10_000_000, f"steps must be in 1..10000000, got {self.steps}")
        need(1 <= self.batch_size <= 65536, f"batch_size must be in 1..65536, got {self.batch_size}")
        need(0.0 < self.lr <= 1.0, f"lr must be in (0, 1], got {self.lr}")
        need(self.warmup >= 0, f"warmup must be >= 0, got {self.warmup}")
        need(
            self.lr_schedule in LR_SCHEDULES,
            f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}",
        )
        need(0.0 <= self.min_lr_ratio <= 1.0, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        need(self.weight_decay >= 0.0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0, "beta1 and beta2 must be in [0, 1)")
        need(self.grad_clip >= 0.0, f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        need(self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}")
        need(0.0 <= self.ema < 1.0, f"ema must be in [0, 1) (0 = off), got {self.ema}")
        need(0.0 <= self.augment_p <= 1.0, f"augment_p must be in [0, 1] (0 = off), got {self.augment_p}")
        need(
            self.objective in TRAIN_OBJECTIVES,
            f"objective must be one of {TRAIN_OBJECTIVES}, got {self.objective!r}",
        )
        for name in ("eval_every", "preview_every", "checkpoint_every"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0 (0 = never), got {getattr(self, name)}")
        need(self.eval_batches >= 1, f"eval_batches must be >= 1, got {self.eval_batches}")
        need(1 <= self.preview_samples <= 64, f"preview_samples must be in 1..64, got {self.preview_samples}")
        need(1 <= self.preview_steps <= 4096, f"preview_steps must be in 1..4096, got {self.preview_steps}")
        need(0 <= self.seed < 2**62, f"seed must be in 0..2**62-1, got {self.seed}")
        need(self.bf16 in (None, True, False), f"bf16 must be true, false or null (auto), got {self.bf16!r}")
        need(
            self.num_workers == 0,
            f"num_workers must be 0 (data is decoded into memory once), got {self.num_workers}",
        )
        for name in ("include", "exclude"):  # JSON gives lists
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        self.data_options()  # validates val_fraction, fit, text_mode, max_items, background, ...

    def data_options(self) -> DataOptions:
        """The data preprocessing and split these settings ask for."""
        return DataOptions(
            fit=self.fit,
            text_mode=self.text_mode,
            val_fraction=self.val_fraction,
            seed=self.seed,
            max_items=self.max_items,
            background=self.background,
            include=self.include,
            exclude=self.exclude,
            column=self.column,
            drop_flat=self.drop_flat,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict, rejecting unknown keys by name."""
        if not isinstance(data, dict):
            raise ValueError(f"TrainConfig expects a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown TrainConfig keys: {', '.join(unknown)}; accepted: {', '.join(sorted(names))}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
