"""The step rule, separate from the model: truncation, drawing tokens and digits, revealing.

All randomness is drawn from one CPU ``torch.Generator`` in a fixed order and amount per step, so
results do not depend on whether the network was called (caching) or on the device.
"""

from __future__ import annotations

import torch

from engine.prime.codec import Codec
from engine.prime.filter import consistent_mask, digit_log_marginals, filtered_log_probs


def tempered_log_probs(
    logits: torch.Tensor,
    y: torch.Tensor,
    codec: Codec,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
) -> torch.Tensor:
    """Filtered log p(x | y) (N, L, C) with temperature, then top-k and top-p, renormalised.

    top-p keeps the smallest set of most likely tokens whose mass reaches p, including the token
    that crosses it. Fully visible tokens keep their single consistent value.
    """
    logp = filtered_log_probs(logits, y, codec)  # (N, L, C)
    if temperature != 1.0:
        logp = torch.log_softmax(logp / temperature, dim=-1)
    if top_k > 0 and top_k < logp.shape[-1]:
        kth = logp.topk(top_k, dim=-1).values[..., -1:]  # (N, L, 1)
        logp = torch.log_softmax(logp.masked_fill(logp < kth, float("-inf")), dim=-1)
    if top_p < 1.0:
        sorted_logp, order = logp.sort(dim=-1, descending=True)  # (N, L, C)
        probs = sorted_logp.exp()
        mass_before = probs.cumsum(-1) - probs  # mass of strictly more likely tokens
        drop_sorted = mass_before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logp = torch.log_softmax(logp.masked_fill(drop, float("-inf")), dim=-1)
    return logp


def draw_tokens(logp: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw of one token per position: logp (..., C), u (...) in [0, 1) -> (...)."""
    cdf = logp.exp().cumsum(-1)  # (N, L, C)
    target = (u.to(cdf.device, cdf.dtype) * cdf[..., -1]).unsqueeze(-1)  # (N, L, 1)
    # right=True: the first index whose cdf exceeds the target, which always has p > 0
    idx = torch.searchsorted(cdf.contiguous(), target.contiguous(), right=True).squeeze(-1)
    return idx.clamp(max=logp.shape[-1] - 1)


def draw_marginal_digits(logp: torch.Tensor, codec: Codec, u: torch.Tensor) -> torch.Tensor:
    """Each digit drawn independently from its marginal: logp (..., C), u (..., ell) -> (..., ell)."""
    marg = digit_log_marginals(logp, codec)  # (..., ell, b)
    return draw_tokens(marg.reshape(-1, codec.base), u.reshape(-1)).view(u.shape)


def reveal_mask(
    y: torch.Tensor, fixed: torch.Tensor, r: float, v: torch.Tensor, codec: Codec
) -> torch.Tensor:
    """Which free masked digits are revealed this step (each with probability r): (N, L, ell) bool.

    y (N, L, ell) digits; fixed (N, L, ell) bool; v (N, L, ell) uniforms.
    """
    return (y == codec.mask) & ~fixed & (v < r)


def repair_inconsistent(
    y_new: torch.Tensor, joint_digits: torch.Tensor, newly: torch.Tensor, y_old: torch.Tensor, codec: Codec
) -> torch.Tensor:
    """Marginal-reveal guard: fall back to the jointly drawn digits where needed.

    A token whose revealed digits match no valid token (possible only when b**ell > C) takes the
    jointly drawn digits instead. Returns the repaired (N, L, ell).
    """
    ok = consistent_mask(y_new, codec).any(-1)  # (N, L)
    if bool(ok.all()):
        return y_new
    fallback = torch.where(newly, joint_digits, y_old)
    return torch.where(ok.unsqueeze(-1), y_new, fallback)
