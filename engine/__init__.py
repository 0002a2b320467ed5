"""Prime Studio's engine: the Prime method, models, sampling, training and model files.

This package never imports Qt. Its public API is re-exported here.
"""

from engine.api import CancelToken, Condition, SampleRequest, SampleResult, SampleStep
from engine.config import ModelConfig
from engine.data import (
    DataError,
    DataOptions,
    PreflightReport,
    TokenData,
    array_dataset,
    load_data,
    preflight,
)
from engine.device import autocast, configure_cpu_threads, pick_device
from engine.files.convert import (
    images_to_tokens,
    text_to_tokens,
    tokens_to_bytes,
    tokens_to_images,
    tokens_to_text,
)
from engine.files.library import (
    ModelEntry,
    bundled_models_dir,
    data_dir,
    import_model,
    list_models,
    remove_model,
    resolve_model,
    user_models_dir,
)
from engine.files.modelfile import (
    ModelFileError,
    ModelInfo,
    app_version,
    load_model,
    read_model_info,
    save_model,
)
from engine.models import PrimeModel
from engine.prime import (
    OBJECTIVES,
    Codec,
    Schedule,
    filtered_log_probs,
    masked_digit_ce,
    paper_surrogate,
    valid_bound,
)
from engine.sampling import (
    Trajectory,
    branch,
    high_digits_condition,
    iter_branch,
    iter_sample,
    region_condition,
    sample,
    text_condition,
)
from engine.training import (
    CheckpointError,
    EvalResult,
    TrainCancelToken,
    TrainConfig,
    TrainEvent,
    TrainingError,
    TrainSummary,
    checkpoint_state,
    evaluate,
    iter_train,
    train,
)

__version__ = "0.1.0"

__all__ = [
    "OBJECTIVES",
    "CancelToken",
    "CheckpointError",
    "Codec",
    "Condition",
    "DataError",
    "DataOptions",
    "EvalResult",
    "ModelConfig",
    "ModelEntry",
    "ModelFileError",
    "ModelInfo",
    "PreflightReport",
    "PrimeModel",
    "SampleRequest",
    "SampleResult",
    "SampleStep",
    "Schedule",
    "TokenData",
    "TrainCancelToken",
    "TrainConfig",
    "TrainEvent",
    "TrainSummary",
    "TrainingError",
    "Trajectory",
    "__version__",
    "app_version",
    "array_dataset",
    "autocast",
    "configure_cpu_threads",
    "branch",
    "bundled_models_dir",
    "checkpoint_state",
    "data_dir",
    "evaluate",
    "filtered_log_probs",
    "high_digits_condition",
    "images_to_tokens",
    "import_model",
    "iter_branch",
    "iter_sample",
    "iter_train",
    "list_models",
    "load_data",
    "load_model",
    "masked_digit_ce",
    "paper_surrogate",
    "pick_device",
    "preflight",
    "read_model_info",
    "region_condition",
    "remove_model",
    "resolve_model",
    "sample",
    "save_model",
    "text_condition",
    "text_to_tokens",
    "tokens_to_bytes",
    "tokens_to_images",
    "tokens_to_text",
    "train",
    "user_models_dir",
    "valid_bound",
]
