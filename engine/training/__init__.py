"""Training and evaluation: ``iter_train`` (the generator), ``train``, ``evaluate``, the recipes.

See :mod:`engine.training.loop` for the step, :mod:`engine.training.checkpoint` for the resumable
checkpoint format, :mod:`engine.training.distributed` for multi-process (torchrun) runs and
:mod:`engine.training.recipes` for the bundled models' one-command recipes. May import every
engine package below it (prime, models, sampling, data, files); never the CLI or the benchmarks.
"""

from engine.training.checkpoint import CheckpointError, checkpoint_path_for, checkpoint_state, model_path_for
from engine.training.config import LR_SCHEDULES, TRAIN_OBJECTIVES, TrainConfig
from engine.training.evaluate import evaluate
from engine.training.events import (
    EVENT_KINDS,
    EvalResult,
    TrainCancelToken,
    TrainEvent,
    TrainingError,
    TrainSummary,
)
from engine.training.loop import iter_train, train
from engine.training.optim import learning_rate

__all__ = [
    "EVENT_KINDS",
    "LR_SCHEDULES",
    "TRAIN_OBJECTIVES",
    "CheckpointError",
    "EvalResult",
    "TrainCancelToken",
    "TrainConfig",
    "TrainEvent",
    "TrainSummary",
    "TrainingError",
    "checkpoint_path_for",
    "checkpoint_state",
    "evaluate",
    "iter_train",
    "learning_rate",
    "model_path_for",
    "train",
]
