"""The step rule, separate from the model: truncation, drawing tokens and digits, revealing.

All randomness is drawn from one CPU ``torch.Generator`` in a fixed order and amount per step that
reveals digits, so results do not depend on whether the network was called (caching), on which
idle steps were skipped, or on the device. Which digits a step reveals is decided by the reveal
strategy (:mod:`engine.sampling.strategies`).

Every categorical draw is an inverse-CDF draw with float64 cumulative sums (:func:`inverse_cdf`):
temperature is applied to the float32 logits first, then one float64 uniform per draw is
located with ``searchsorted`` in a float64 cumulative sum. A float32 running sum near 1 moves in
steps of 6e-8, so over tens of thousands of classes it would drop or inflate the tail, and
float32 uniforms come in the same steps.
"""

from __future__ import annotations

import torch

from engine.prime.codec import Codec
from engine.prime.filter import (
    digit_log_marginals,
    filtered_log_probs,
    has_consistent_token,
    inconsistent_mask,
)


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
        probs = torch.softmax(sorted_logp, dim=-1)  # exp of normalised log-probs, fast on -inf
        mass_before = probs.cumsum(-1) - probs  # mass of strictly more likely tokens
        drop_sorted = mass_before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logp = torch.log_softmax(logp.masked_fill(drop, float("-inf")), dim=-1)
    return logp


MAX_TABLE = 1 << 24  # entries of the pattern -> consistent-set table (bools) before falling back


class ConsistentSets:
    """consistent_mask by table lookup: the consistent set of every digit pattern, built once.

    A token's digits (mask = b) read in base b + 1 index one of (b + 1)^ell patterns; the table
    holds :func:`consistent_mask` of each, so a lookup costs three tensor operations whatever
    ell is. Codecs whose table would exceed ``MAX_TABLE`` entries compute the mask directly.
    """

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        patterns = (codec.base + 1) ** codec.ell
        self.place = torch.tensor([(codec.base + 1) ** (codec.ell - 1 - j) for j in range(codec.ell)])
        self.token_digits = codec.token_digits  # (C, ell) digits of every token id
        self.outside: torch.Tensor | None = None  # (P, C) True where a token is NOT consistent
        if patterns * codec.num_classes <= MAX_TABLE:
            k = torch.arange(patterns)
            digits = (k.unsqueeze(-1) // self.place) % (codec.base + 1)  # (P, ell)
            self.outside = inconsistent_mask(digits, codec)

    def to(self, device: torch.device) -> ConsistentSets:
        """Move the tables to ``device`` (in place; returns self)."""
        self.place, self.token_digits = self.place.to(device), self.token_digits.to(device)
        if self.outside is not None:
            self.outside = self.outside.to(device)
        return self

    def inconsistent(self, y: torch.Tensor) -> torch.Tensor:
        """Bool (K, C): the tokens NOT consistent with each partial token y (K, ell)."""
        if self.outside is None:
            return inconsistent_mask(y, self.codec)
        return self.outside[(y * self.place).sum(-1)]  # (K,) pattern index, then a gather

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        """Bool (K, C): the tokens consistent with each partial token y (K, ell)."""
        return ~self.inconsistent(y)


def draw_filtered(
    logits: torch.Tensor,
    y: torch.Tensor | None,
    u: torch.Tensor,
    consistent: ConsistentSets,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
) -> torch.Tensor:
    """One token per row from the filtered, tempered p(x | y): logits (K, C), y (K, ell), u (K,).

    y None: the tokens are fully masked (no filter). The same distribution and the same
    inverse-CDF draw as :func:`tempered_log_probs` followed by :func:`draw_tokens`, in fewer
    operations when top-k and top-p are off (the sampler's hot path).
    """
    codec = consistent.codec
    if top_k > 0 or top_p < 1.0:
        if y is None:
            y = torch.full((logits.shape[0], codec.ell), codec.mask, device=logits.device)
        return draw_tokens(tempered_log_probs(logits, y, codec, temperature, top_k, top_p), u)
    if temperature != 1.0:
        logits = logits / temperature  # float32, as tempered_log_probs
    if y is not None and codec.ell > 1:  # with ell = 1 a token with a masked digit is fully masked
        logits = logits.masked_fill(consistent.inconsistent(y), float("-inf"))
    return inverse_cdf(logits, u)


BLOCK = 128  # classes per block of the two-level inverse CDF


def inverse_cdf(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draws from softmax(logits): logits (K, C), u (K,) or (K, M) in [0, 1) -> same as u.

    Each uniform picks the first class whose cumulative mass exceeds u times the total, so a
    class is drawn with exactly its probability (never one with probability 0; -inf = excluded),
    and several uniforms per row draw independently from the same row. Uniforms and cumulative
    sums are float64: a float32 running sum near 1 moves in steps of 6e-8, which over tens of
    thousands of classes drops or inflates the tail.

    Up to ``4 * BLOCK`` classes the probabilities are float64 and summed directly. Above, the
    probabilities are float32 (each within a relative 1e-7 of its float64 value; only their
    running sum needs float64) and the draw is two-level: float64 sums of blocks of ``BLOCK``
    classes, a search over their cumulative sum, then a float64 cumulative sum inside the chosen
    block. A float64 softmax and cumulative sum over all C cost 2 to 5 times more on CPU.
    """
    if logits.dim() != 2 or u.dim() not in (1, 2) or u.shape[0] != logits.shape[0]:
        raise ValueError(
            f"logits must be (K, C) and u (K,) or (K, M), got {tuple(logits.shape)} and {tuple(u.shape)}"
        )
    k, c = logits.shape
    uu = u.to(logits.device, torch.float64).reshape(k, -1)  # (K, M)
    if c <= 4 * BLOCK:
        cdf = torch.softmax(logits, dim=-1, dtype=torch.float64).cumsum_(-1)  # (K, C)
        _check_mass(cdf[:, -1])
        return _search(cdf, uu * cdf[:, -1:]).view(u.shape)
    w = torch.softmax(logits.float(), dim=-1)  # (K, C) float32 (its kernel is fast on -inf; exp is not)
    full = c // BLOCK
    sums = w[:, : full * BLOCK].view(k, full, BLOCK).sum(-1, dtype=torch.float64)  # (K, full)
    if full * BLOCK < c:
        sums = torch.cat([sums, w[:, full * BLOCK :].sum(-1, keepdim=True, dtype=torch.float64)], dim=1)
    block_cdf = sums.cumsum_(-1)  # (K, nb) float64
    _check_mass(block_cdf[:, -1])
    target = uu * block_cdf[:, -1:]  # (K, M)
    block = _search(block_cdf, target)  # (K, M): a block with positive mass
    before = torch.where(block > 0, block_cdf.gather(1, (block - 1).clamp(min=0)), torch.zeros_like(target))
    index = block.unsqueeze(-1) * BLOCK + torch.arange(BLOCK, device=w.device)  # (K, M, BLOCK)
    inside = index < c
    values = w.gather(1, index.clamp(max=c - 1).view(k, -1)).view(index.shape).double()
    within = torch.where(inside, values, torch.zeros_like(values)).cumsum_(-1)  # (K, M, BLOCK)
    pos = _search(within.view(-1, BLOCK), (target - before).view(-1, 1)).view(block.shape)
    return (block * BLOCK + pos).view(u.shape)


def _check_mass(total: torch.Tensor) -> None:
    """Every row must have some class with positive, finite probability (K totals)."""
    if not bool(((total > 0) & torch.isfinite(total)).all()):
        raise ValueError("cannot draw from a distribution with no class of positive probability")


def _search(cdf: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """First index whose cumulative mass exceeds target: cdf (R, n) non-decreasing, target (R, M).

    A target at or above the total (u * total rounded up, or float64 sums of one block in two
    orders) takes the last index with positive mass instead.
    """
    idx = torch.searchsorted(cdf, target.contiguous(), right=True)
    over = idx >= cdf.shape[-1]
    if bool(over.any()):
        rows = over.any(-1).nonzero().squeeze(-1)
        last = torch.searchsorted(cdf[rows], cdf[rows, -1:], right=False)  # (R', 1)
        idx[rows] = torch.where(over[rows], last, idx[rows])
    return idx


def draw_tokens(logp: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw of one token per position: logp (..., C), u (...) in [0, 1) -> (...).

    logp: log-probabilities (already tempered), float32 or float64; the draw is float64
    (:func:`inverse_cdf`).
    """
    flat = logp.reshape(-1, logp.shape[-1])
    return inverse_cdf(flat, u.reshape(-1)).view(u.shape)


def draw_marginal_digits(logp: torch.Tensor, codec: Codec, u: torch.Tensor) -> torch.Tensor:
    """Each digit drawn independently from its marginal: logp (..., C), u (..., ell) -> (..., ell)."""
    marg = digit_log_marginals(logp, codec)  # (..., ell, b)
    return draw_tokens(marg.reshape(-1, codec.base), u.reshape(-1)).view(u.shape)


def repair_inconsistent(
    y_new: torch.Tensor, joint_digits: torch.Tensor, newly: torch.Tensor, y_old: torch.Tensor, codec: Codec
) -> torch.Tensor:
    """Marginal-reveal guard: fall back to the jointly drawn digits where needed.

    A token whose revealed digits match no valid token (possible only when b**ell > C) takes the
    jointly drawn digits instead. Returns the repaired (N, L, ell).
    """
    ok = has_consistent_token(y_new, codec)  # (N, L)
    if bool(ok.all()):
        return y_new
    fallback = torch.where(newly, joint_digits, y_old)
    return torch.where(ok.unsqueeze(-1), y_new, fallback)
