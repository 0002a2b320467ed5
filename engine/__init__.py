"""Prime Studio's engine: the Prime method, models, sampling, training and model files.

This package never imports Qt. Its public API is re-exported here.
"""

from engine.api import CancelToken, Condition, SampleRequest, SampleResult, SampleStep
from engine.config import ModelConfig
from engine.convert import images_to_tokens, text_to_tokens, tokens_to_bytes, tokens_to_images, tokens_to_text
from engine.device import autocast, pick_device
from engine.models import PrimeModel
from engine.prime import OBJECTIVES, Codec, Schedule, masked_digit_ce, paper_surrogate, valid_bound
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

__version__ = "0.1.0"

__all__ = [
    "OBJECTIVES",
    "CancelToken",
    "Codec",
    "Condition",
    "ModelConfig",
    "PrimeModel",
    "SampleRequest",
    "SampleResult",
    "SampleStep",
    "Schedule",
    "Trajectory",
    "__version__",
    "autocast",
    "branch",
    "high_digits_condition",
    "images_to_tokens",
    "iter_branch",
    "iter_sample",
    "masked_digit_ce",
    "paper_surrogate",
    "pick_device",
    "region_condition",
    "sample",
    "text_condition",
    "text_to_tokens",
    "tokens_to_bytes",
    "tokens_to_images",
    "tokens_to_text",
    "valid_bound",
]
