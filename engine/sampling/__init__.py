"""Sampling: the generator-based sampler, its trajectory record and conditioning helpers.

``sampler`` (the loop), ``strategies`` (which digits a step reveals), ``planned`` (exact idle
skipping and the ancestral hot path), ``step`` (the step rule: filter, temperature, draws),
``trajectory`` (the record), ``conditioning`` (fixed sub-tokens).

It imports :mod:`engine.api`, :mod:`engine.config`, :mod:`engine.prime` and :mod:`engine.models`;
never files, data, training or the CLI.
"""

from engine.sampling.conditioning import high_digits_condition, region_condition, text_condition
from engine.sampling.sampler import branch, iter_branch, iter_sample, sample
from engine.sampling.trajectory import Trajectory

__all__ = [
    "Trajectory",
    "branch",
    "high_digits_condition",
    "iter_branch",
    "iter_sample",
    "region_condition",
    "sample",
    "text_condition",
]
