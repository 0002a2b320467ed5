"""The Prime method: codec, schedules, noising, the filter and objectives (see PRIME.md)."""

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
