"""The step rule, separate from the model: truncation, drawing tokens and digits, revealing.

All randomness is drawn from one CPU ``torch.Generator`` in a fixed order and amount per step that
reveals digits, so results do not depend on whether the network was called (caching), on which
idle steps were skipped, or on the device. Which digits a step reveals is decided by the reveal
strategy (:mod:`engine.sampling.strategies`).
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
            self.outside = ~consistent_mask(digits.unsqueeze(0), codec)[0]

    def to(self, device: torch.device) -> ConsistentSets:
        """Move the tables to ``device`` (in place; returns self)."""
        self.place, self.token_digits = self.place.to(device), self.token_digits.to(device)
        if self.outside is not None:
            self.outside = self.outside.to(device)
        return self

    def inconsistent(self, y: torch.Tensor) -> torch.Tensor:
        """Bool (K, C): the tokens NOT consistent with each partial token y (K, ell)."""
        if self.outside is None:
            return ~consistent_mask(y.unsqueeze(0), self.codec)[0]
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
    if y is not None and codec.ell > 1:  # with ell = 1 a token with a masked digit is fully masked
        logits = logits.masked_fill(consistent.inconsistent(y), float("-inf"))
    if temperature != 1.0:
        logits = logits / temperature
    # float32 sums over many classes lose mass in the tail: float64 for large C
    cdf = torch.softmax(logits, dim=-1, dtype=torch.float64 if logits.shape[-1] > 4096 else None).cumsum(-1)
    target = u.view(-1, 1).to(cdf.dtype) * cdf[:, -1:]  # (K, 1)
    return torch.searchsorted(cdf, target, right=True).view(-1).clamp_(max=cdf.shape[-1] - 1)


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
