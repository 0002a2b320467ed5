"""The Prime method itself: sub-token codec, schedules, noising, the filter and the objectives.

Pure functions and small frozen objects over tensors, randomness passed in as a
``torch.Generator``. It imports only :mod:`engine.config` and torch: everything else builds on it.
"""

from engine.prime.codec import Codec
from engine.prime.filter import consistent_mask, digit_log_marginals, filtered_log_probs
from engine.prime.noising import add_noise, stratified_times
from engine.prime.objectives import OBJECTIVES, masked_digit_ce, paper_surrogate, valid_bound
from engine.prime.schedule import Schedule, time_grid

__all__ = [
    "OBJECTIVES",
    "Codec",
    "Schedule",
    "add_noise",
    "consistent_mask",
    "digit_log_marginals",
    "filtered_log_probs",
    "masked_digit_ce",
    "paper_surrogate",
    "stratified_times",
    "time_grid",
    "valid_bound",
]
