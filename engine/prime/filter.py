"""The consistency filter (carry-over) and digit marginals.

For token i, V(y^i) = {x : for every j, y^{i,j} = m or digit_j(x) = y^{i,j}}. Logits outside V
are -inf before the softmax.

Both the mask and the marginals walk the code space as a tree of digit prefixes (most
significant first), so their cost is about two passes over C whatever ell is, never ell passes
and never a (B, L, C, b) tensor: the mask is the outer product of one (b,) mask per digit, built
one prefix length at a time (only prefixes of codes below C are kept, so each level is at most
C + b wide); the marginals sum the probabilities of sibling prefixes level by level. A
permutation (Prime-v2) maps code space to token ids with one gather.
"""

from __future__ import annotations

import torch

from engine.prime.codec import Codec


def _prefix_counts(codec: Codec) -> list[int]:
    """n_r for r = 1..ell: how many length-r digit prefixes begin a code below C."""
    b, ell, c = codec.base, codec.ell, codec.num_classes
    return [-(-c // b ** (ell - r)) for r in range(1, ell + 1)]


def _code_mask(y: torch.Tensor, codec: Codec, consistent: bool) -> torch.Tensor:
    """Bool (K, C) over token ids: consistent (or, ``consistent=False``, inconsistent) with y (K, ell)."""
    values = torch.arange(codec.base, device=y.device)  # (b,)
    out: torch.Tensor | None = None  # (K, n_r) over code prefixes of length r
    for j, n_next in enumerate(_prefix_counts(codec)):
        y_j = y[:, j : j + 1]  # (K, 1)
        if consistent:
            digit = (y_j == codec.mask) | (y_j == values)  # (K, b)
            out = digit if out is None else (out.unsqueeze(-1) & digit.unsqueeze(1)).flatten(1)
        else:
            digit = (y_j != codec.mask) & (y_j != values)
            out = digit if out is None else (out.unsqueeze(-1) | digit.unsqueeze(1)).flatten(1)
        out = out[:, :n_next]
    assert out is not None
    if codec.permutation is not None:  # token x has code permutation[x]
        return out.index_select(1, codec.code_of_token.to(y.device))
    return out.contiguous()


def consistent_mask(y: torch.Tensor, codec: Codec) -> torch.Tensor:
    """Bool (..., C): True where token x is consistent with the partial token y (..., ell)."""
    flat = y.reshape(-1, codec.ell)
    return _code_mask(flat, codec, True).view(*y.shape[:-1], codec.num_classes)


def inconsistent_mask(y: torch.Tensor, codec: Codec) -> torch.Tensor:
    """Bool (..., C): ``~consistent_mask(y, codec)``, built directly (no extra pass)."""
    flat = y.reshape(-1, codec.ell)
    return _code_mask(flat, codec, False).view(*y.shape[:-1], codec.num_classes)


def has_consistent_token(y: torch.Tensor, codec: Codec) -> torch.Tensor:
    """Bool (...): whether any token in 0..C-1 is consistent with y (..., ell), in O(ell).

    The smallest consistent code sets every masked digit to 0; codes 0..C-1 are all tokens
    (the permutation maps them onto themselves), so some token fits iff that code is below C.
    """
    place = codec.place.to(y.device)
    low = (torch.where(y == codec.mask, torch.zeros_like(y), y) * place).sum(-1)
    return low < codec.num_classes


def filtered_log_probs(logits: torch.Tensor, y: torch.Tensor, codec: Codec) -> torch.Tensor:
    """log p_theta(x | y) (..., C) in float32: logits restricted to V(y), then log-softmax.

    A fully masked token admits every x, so the mask is built only for tokens with a visible digit.
    """
    logits = logits.float()
    some_visible = (y != codec.mask).any(-1)  # (...)
    if bool(some_visible.all()):
        return torch.log_softmax(logits.masked_fill(inconsistent_mask(y, codec), float("-inf")), dim=-1)
    out = torch.log_softmax(logits, dim=-1)
    if bool(some_visible.any()):
        sub_logits, sub_y = logits[some_visible], y[some_visible]  # (K, C), (K, ell)
        masked = sub_logits.masked_fill(inconsistent_mask(sub_y, codec), float("-inf"))
        out = out.index_put((some_visible,), torch.log_softmax(masked, dim=-1))  # out of place: autograd
    return out


def _to_code_space(values: torch.Tensor, codec: Codec) -> torch.Tensor:
    """(..., C) indexed by token id -> indexed by code (identity without a permutation)."""
    if codec.inverse_permutation is None:
        return values
    return values.index_select(-1, codec.inverse_permutation.to(values.device))


def digit_masses(logp: torch.Tensor, codec: Codec) -> torch.Tensor:
    """pi^{ij}(v) for every digit position and value: log-probs (..., C) -> masses (..., ell, b).

    pi^{ij}(v) = sum of p(x) over tokens x whose digit j is v, summed in probability space over
    the prefix tree: level r holds the mass of every length-r prefix, and digit r's marginal sums
    the length-(r+1) prefixes over their first r digits. Differentiable; float32.
    """
    b, ell, c = codec.base, codec.ell, codec.num_classes
    # softmax of log-probs is exp renormalised; unlike exp, its CPU kernel is fast on -inf entries
    p = _to_code_space(torch.softmax(logp.float(), dim=-1), codec).reshape(-1, c)  # (K, C) by code
    if ell == 1:
        return p.view(*logp.shape[:-1], 1, b)
    counts = [1, *_prefix_counts(codec)]  # n_0 = 1 .. n_ell = C
    out: list[torch.Tensor] = []
    level = p
    for r in range(ell - 1, -1, -1):  # level: the mass of each length-(r+1) prefix, (K, n_{r+1})
        n = counts[r]
        if n * b > level.shape[-1]:
            level = torch.nn.functional.pad(level, (0, n * b - level.shape[-1]))
        grouped = level.view(-1, n, b)  # (K, n_r, b): [length-r prefix, digit r]
        out.append(grouped.sum(1))  # digit r
        if r:
            level = grouped.sum(-1)
    return torch.stack(out[::-1], dim=-2).view(*logp.shape[:-1], ell, b)


def digit_log_marginals(logp: torch.Tensor, codec: Codec) -> torch.Tensor:
    """log pi^{ij}(v) for every digit position and value: (B, L, C) -> (B, L, ell, b).

    The log of :func:`digit_masses` (never a (B, L, C, b) tensor). Values no consistent token
    has are -inf.
    """
    return digit_masses(logp, codec).log()
