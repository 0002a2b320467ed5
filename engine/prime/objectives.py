"""Training objectives and the likelihood bound we report.

Each objective is a plain function of (logits, y_t, x0, t) returning nats per sequence (B,):

- ``valid_bound``: the continuous-time upper bound on -log p(x0) (docs/METHOD.md §4). Per-item Monte
  Carlo estimate at the given t; its mean over t ~ U(0, 1) bounds the NLL. Report only this.
- ``masked_digit_ce``: unweighted cross-entropy of the masked digits' marginals (a training loss).
- ``paper_surrogate``: the paper's objective, scoring masked digits of a token jointly with w(t).
  It is NOT a likelihood bound (it can fall below the data entropy); a training surrogate only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.prime.codec import Codec
from engine.prime.filter import digit_masses, filtered_log_probs
from engine.prime.schedule import Schedule

TINY_MASS = 1e-30  # digit masses below this are recomputed in log space (float32 sums lose them)


def _masked_digit_nll(
    logits: torch.Tensor, y_t: torch.Tensor, x0: torch.Tensor, codec: Codec
) -> torch.Tensor:
    """Sum over masked digits of -log pi^{ij}(y0^{ij} | y_t): (B,).

    All digit marginals come from one walk of the prefix tree (:func:`digit_masses`), so the cost
    does not grow with ell; a masked digit whose mass is too small for a float32 sum (the model
    gives the truth under 1e-30) is recomputed exactly with a logsumexp over its tokens.
    """
    logp = filtered_log_probs(logits, y_t, codec)  # (B, L, C)
    masked = y_t == codec.mask  # (B, L, ell)
    if codec.ell == 1:
        nll = -logp.gather(-1, x0.long().unsqueeze(-1))  # (B, L, 1)
    else:
        y0 = codec.encode(x0)  # (B, L, ell)
        mass = digit_masses(logp, codec).gather(-1, y0.unsqueeze(-1)).squeeze(-1)  # (B, L, ell)
        small = mass < TINY_MASS
        nll = -torch.log(torch.where(small, torch.ones_like(mass), mass))  # no inf, no NaN gradient
        lost = masked & small
        if bool(lost.any()):
            b_i, l_i, j_i = lost.nonzero(as_tuple=True)
            hit = codec.token_digits.to(logp.device)[:, j_i].t() == y0[b_i, l_i, j_i].unsqueeze(-1)  # (E, C)
            exact = -torch.logsumexp(logp[b_i, l_i].masked_fill(~hit, float("-inf")), dim=-1)
            nll = nll.index_put((b_i, l_i, j_i), exact)
    return torch.where(masked, nll, torch.zeros_like(nll)).sum((-1, -2))


def valid_bound(
    logits: torch.Tensor,
    y_t: torch.Tensor,
    x0: torch.Tensor,
    t: torch.Tensor,
    codec: Codec,
    schedule: Schedule,
) -> torch.Tensor:
    """w(t) * sum over masked digits of -log pi(y0 digit | y_t), nats per sequence (B,).

    logits (B, L, C) raw; y_t (B, L, ell) digits; x0 (B, L) clean tokens; t (B,) in (0, 1].
    """
    w = schedule.weight(t.float()).to(logits.device)  # (B,)
    nll = _masked_digit_nll(logits, y_t, x0, codec)
    return torch.where(nll > 0, w * nll, torch.zeros_like(nll))  # no inf * 0 when nothing is masked


def masked_digit_ce(
    logits: torch.Tensor,
    y_t: torch.Tensor,
    x0: torch.Tensor,
    t: torch.Tensor,
    codec: Codec,
    schedule: Schedule,
) -> torch.Tensor:
    """Unweighted sum over masked digits of -log pi(y0 digit | y_t) (B,). A training loss only."""
    del t, schedule
    return _masked_digit_nll(logits, y_t, x0, codec)


def paper_surrogate(
    logits: torch.Tensor,
    y_t: torch.Tensor,
    x0: torch.Tensor,
    t: torch.Tensor,
    codec: Codec,
    schedule: Schedule,
) -> torch.Tensor:
    """The paper's surrogate: w(t) * sum over tokens with a masked digit of -log p(x0 | y_t) (B,).

    Not a likelihood bound: it equals the valid bound minus the masked digits' total correlation.
    """
    logp = filtered_log_probs(logits, y_t, codec)  # (B, L, C)
    nll = -logp.gather(-1, x0.long().unsqueeze(-1)).squeeze(-1)  # (B, L)
    any_masked = (y_t == codec.mask).any(-1)  # (B, L)
    w = schedule.weight(t.float()).to(logits.device)
    total = torch.where(any_masked, nll, torch.zeros_like(nll)).sum(-1)
    return torch.where(total > 0, w * total, torch.zeros_like(total))


Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Codec, Schedule], torch.Tensor]

OBJECTIVES: dict[str, Objective] = {
    "valid_bound": valid_bound,
    "masked_ce": masked_digit_ce,
    "surrogate": paper_surrogate,
}
