"""Conditioning: sub-tokens fixed during sampling (text prefix/suffix, image regions, high digits)."""

from __future__ import annotations

import torch

from engine.api import Condition
from engine.prime.codec import Codec
from engine.prime.filter import has_consistent_token


def initial_state(
    codec: Codec, length: int, num_samples: int, condition: Condition | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step-0 digits (N, L, ell) (fixed digits visible, the rest masked) and the fixed mask."""
    shape = (num_samples, length, codec.ell)
    y = torch.full(shape, codec.mask, dtype=torch.long)
    if condition is None:
        return y, torch.zeros(shape, dtype=torch.bool)
    fixed, digits = condition.fixed, condition.digits.long()
    if fixed.shape[-2:] != (length, codec.ell):
        raise ValueError(
            f"condition must have shape (L, ell) = ({length}, {codec.ell}), got {tuple(fixed.shape)}"
        )
    if fixed.dim() == 3 and fixed.shape[0] != num_samples:
        raise ValueError(f"per-sample condition has {fixed.shape[0]} rows, but num_samples={num_samples}")
    fixed = fixed.expand(shape).clone()
    digits = digits.expand(shape)
    if bool(((digits < 0) | (digits >= codec.base))[fixed].any()):
        raise ValueError(f"fixed digits must be in 0..{codec.base - 1}")
    y = torch.where(fixed, digits, y)
    consistent = _any_consistent(y, codec)
    if not bool(consistent.all()):
        raise ValueError("the fixed digits of some token match no valid token")
    return y, fixed


def _any_consistent(y: torch.Tensor, codec: Codec) -> torch.Tensor:
    return has_consistent_token(y, codec)  # O(ell) per token, no (N, L, C) mask


def text_condition(
    codec: Codec,
    length: int,
    prefix: torch.Tensor | None = None,
    suffix: torch.Tensor | None = None,
    end: int | None = None,
) -> Condition:
    """Fix a token prefix at the start and/or a suffix ending at ``end`` (default: the sequence end).

    Infilling: the tokens between the prefix and the suffix are generated; tokens after ``end``
    are free (callers may drop them).
    """
    end = length if end is None else end
    if not 0 <= end <= length:
        raise ValueError(f"end must be in 0..{length}, got {end}")
    prefix = torch.zeros(0, dtype=torch.long) if prefix is None else prefix.long().flatten()
    suffix = torch.zeros(0, dtype=torch.long) if suffix is None else suffix.long().flatten()
    if prefix.numel() + suffix.numel() > end:
        raise ValueError(
            f"prompt ({prefix.numel()} tokens) and suffix ({suffix.numel()} tokens) do not fit in a "
            f"sequence of {end} tokens; shorten them or raise the length"
        )
    tokens = torch.zeros(length, dtype=torch.long)
    keep = torch.zeros(length, dtype=torch.bool)
    tokens[: prefix.numel()] = prefix
    keep[: prefix.numel()] = True
    if suffix.numel():
        tokens[end - suffix.numel() : end] = suffix
        keep[end - suffix.numel() : end] = True
    return region_condition(codec, tokens, keep)


def region_condition(codec: Codec, tokens: torch.Tensor, keep: torch.Tensor) -> Condition:
    """Keep whole tokens where ``keep`` is True (inpainting keeps the unmasked region).

    tokens (L,) or (N, L); keep (L,) or (N, L) bool.
    """
    if keep.dtype != torch.bool:
        raise ValueError("keep must be a bool tensor")
    tokens, keep = torch.broadcast_tensors(tokens.long(), keep)
    digits = codec.encode(tokens.clamp(min=0))  # (..., L, ell)
    if bool((tokens[keep] < 0).any()):
        raise ValueError("kept tokens must be decided (no -1 inside the kept region)")
    fixed = keep.unsqueeze(-1).expand(digits.shape).clone()
    return Condition(fixed=fixed, digits=digits)


def high_digits_condition(
    codec: Codec, tokens: torch.Tensor, keep_digits: int, where: torch.Tensor | None = None
) -> Condition:
    """Keep the ``keep_digits`` most significant digits of every token (or of tokens in ``where``).

    "Keep the coarse image, regenerate the detail": only possible with ell > 1.
    """
    if not 1 <= keep_digits < codec.ell:
        raise ValueError(f"keep_digits must be in 1..{codec.ell - 1} for ell={codec.ell}, got {keep_digits}")
    if codec.permutation is not None:
        raise ValueError("keeping high digits needs a model without index shuffling")
    if bool((tokens < 0).any()):
        raise ValueError("tokens must be decided (no -1) to keep their high digits")
    digits = codec.encode(tokens.long())  # (..., L, ell)
    fixed = torch.zeros_like(digits, dtype=torch.bool)
    fixed[..., :keep_digits] = True
    if where is not None:
        fixed &= torch.broadcast_to(where.bool(), digits.shape[:-1]).unsqueeze(-1)
    return Condition(fixed=fixed, digits=digits)
