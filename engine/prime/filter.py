"""The consistency filter (carry-over) and digit marginals.

For token i, V(y^i) = {x : for every j, y^{i,j} = m or digit_j(x) = y^{i,j}}. Logits outside V
are -inf before the softmax. Masks are built one digit position at a time with boolean ops.
"""

from __future__ import annotations

import torch

from engine.prime.codec import Codec


def consistent_mask(y: torch.Tensor, codec: Codec) -> torch.Tensor:
    """Bool (B, L, C): True where token x is consistent with the partial token y (B, L, ell)."""
    table = codec.token_digits.to(y.device)  # (C, ell)
    ok = None
    for j in range(codec.ell):
        y_j = y[..., j : j + 1]  # (B, L, 1)
        ok_j = (y_j == codec.mask) | (y_j == table[:, j])  # (B, L, C)
        ok = ok_j if ok is None else ok & ok_j
    assert ok is not None
    return ok


def filtered_log_probs(logits: torch.Tensor, y: torch.Tensor, codec: Codec) -> torch.Tensor:
    """log p_theta(x | y) (..., C) in float32: logits restricted to V(y), then log-softmax.

    A fully masked token admits every x, so the mask is built only for tokens with a visible digit.
    """
    logits = logits.float()
    some_visible = (y != codec.mask).any(-1)  # (...)
    if bool(some_visible.all()):
        return torch.log_softmax(logits.masked_fill(~consistent_mask(y, codec), float("-inf")), dim=-1)
    out = torch.log_softmax(logits, dim=-1)
    if bool(some_visible.any()):
        sub_logits, sub_y = logits[some_visible], y[some_visible]  # (K, C), (K, ell)
        masked = sub_logits.masked_fill(~consistent_mask(sub_y, codec), float("-inf"))
        out = out.index_put((some_visible,), torch.log_softmax(masked, dim=-1))  # out of place: autograd
    return out


def digit_log_marginals(logp: torch.Tensor, codec: Codec) -> torch.Tensor:
    """log pi^{ij}(v) for every digit position and value: (B, L, C) -> (B, L, ell, b).

    pi^{ij}(v) = sum of p(x) over tokens x whose digit j is v (summed in probability space with
    an index-add over C, never a (B, L, C, b) tensor). Values no consistent token has are -inf.
    """
    table = codec.token_digits.to(logp.device)  # (C, ell)
    p = logp.float().exp()  # (B, L, C)
    out = []
    for j in range(codec.ell):
        marg = torch.zeros(*p.shape[:-1], codec.base, dtype=p.dtype, device=p.device)  # (B, L, b)
        out.append(marg.index_add_(-1, table[:, j], p).log())
    return torch.stack(out, dim=-2)  # (B, L, ell, b)


def digit_log_prob(logp: torch.Tensor, codec: Codec, j: int, value: torch.Tensor) -> torch.Tensor:
    """log pi^{ij}(value) for one digit position j: logp (B, L, C), value (B, L) -> (B, L)."""
    table = codec.token_digits.to(logp.device)  # (C, ell)
    hit = table[:, j] == value.unsqueeze(-1)  # (B, L, C)
    return torch.logsumexp(logp.masked_fill(~hit, float("-inf")), dim=-1)
