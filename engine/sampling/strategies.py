"""Reveal strategies: which masked digits a sampling step reveals, as plain functions.

Every strategy works on the free masked digits (``candidates``: masked and not conditioned) and
never touches a visible or conditioned digit; the values revealed are always drawn from the
filtered distribution p(x | y_t) by the step rule (:mod:`engine.sampling.step`).

- **ancestral** (default): the model's own sampler. Each free digit's reveal step is drawn up
  front from the schedule, P(revealed by step k | masked after step k0) =
  (alpha(t_k) - alpha(t_k0)) / (1 - alpha(t_k0)), which is exactly the distribution of revealing
  each masked digit with probability r = (alpha_s - alpha_t) / (1 - alpha_t) at every step. The
  sampler can then jump from one step that reveals something to the next (exact idle skipping).
- **confidence** / **margin** / **entropy**: at each step reveal the n most certain digits, with
  n following the schedule's expected reveals (the rounded expected count, so every digit is
  revealed by the last step). A digit's confidence is the maximum of its marginal
  pi^{ij} under the filtered distribution (for ell = 1 this is LLaDA's "low-confidence
  remasking"); margin is top-1 minus top-2 of the marginal; entropy orders by low entropy.
- **threshold**: reveal every masked digit whose confidence reaches tau, and at least the most
  confident one per sample and step (Fast-dLLM's parallel decoding, per digit); the number of
  network calls adapts to the sample. The last step reveals whatever is left.

The last four are *not* the ancestral sampler: the valid bound describes the model (and its
ancestral sampler), not the samples these strategies draw.
"""

from __future__ import annotations

import bisect

import torch

from engine.api import STRATEGIES

COUNTED = ("confidence", "margin", "entropy")  # strategies that reveal a scheduled number of digits


def reveal_cdf(alpha: torch.Tensor, start: int) -> torch.Tensor:
    """P(a digit still masked after step ``start`` is revealed by step k), k = start+1..T.

    alpha (T+1,) float64: alpha at the grid times t_0 = 1 .. t_T = 0. Returns (T - start,)
    float64, non-decreasing, last entry exactly 1 (the last step reveals everything).
    """
    a_start = float(alpha[start])
    rest = alpha[start + 1 :].to(torch.float64)
    if 1.0 - a_start <= 0.0:
        return torch.ones_like(rest)
    cdf = ((rest - a_start) / (1.0 - a_start)).clamp(0.0, 1.0)
    cdf = torch.cummax(cdf, 0).values  # guard against rounding in a warped grid
    cdf[-1] = 1.0
    return cdf


def ancestral_reveal_steps(
    candidates: torch.Tensor, cdf: torch.Tensor, start: int, u: torch.Tensor
) -> torch.Tensor:
    """Each free digit's reveal step under the ancestral sampler: (N, L, ell) int64 (0 elsewhere).

    candidates (N, L, ell) bool; cdf (T - start,) from :func:`reveal_cdf`; u (N, L, ell) uniforms
    in [0, 1). The step is the first k > start with cdf_k > u (inverse-CDF draw).
    """
    first = torch.searchsorted(cdf[:-1].contiguous(), u.to(torch.float64).reshape(-1), right=True)
    steps = (start + 1 + first).view(u.shape)
    return torch.where(candidates, steps, torch.zeros_like(steps))


def scheduled_counts(candidates: torch.Tensor, cdf: torch.Tensor) -> torch.Tensor:
    """How many digits each sample reveals at each step: (N, T - start) int64.

    The rounded expected number revealed by step k under the schedule, differenced, so each row
    sums to its number of free masked digits (candidates (N, L, ell) bool).
    """
    m = candidates.flatten(1).sum(-1)  # (N,)
    target = torch.floor(m.unsqueeze(-1).to(torch.float64) * cdf + 0.5).long()  # (N, T - start)
    target[:, -1] = m
    return torch.diff(target, dim=1, prepend=torch.zeros_like(target[:, :1]))


def digit_scores(log_marginals: torch.Tensor, strategy: str) -> torch.Tensor:
    """How certain each digit is, higher = more certain: (..., ell, b) log pi -> (..., ell).

    confidence / threshold: max_v pi(v); margin: top-1 minus top-2 probability; entropy: minus
    the entropy of pi (in nats).
    """
    p = log_marginals.exp()
    if strategy in ("confidence", "threshold"):
        return p.max(-1).values
    if strategy == "margin":
        top = p.topk(2, dim=-1).values  # (..., ell, 2); b >= 2 always
        return top[..., 0] - top[..., 1]
    if strategy == "entropy":
        return torch.where(p > 0, p * log_marginals, torch.zeros_like(p)).sum(-1)
    raise ValueError(f"no digit score for strategy {strategy!r}")


def most_certain(scores: torch.Tensor, candidates: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """The ``count`` highest-scoring candidates of each row: scores, candidates (N, D), count (N,).

    Returns (N, D) bool. Ties go to the earlier position (a stable sort), so the choice is
    deterministic.
    """
    ranked = scores.masked_fill(~candidates, float("-inf"))
    order = ranked.argsort(dim=1, descending=True, stable=True)  # (N, D)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1]).expand_as(order))
    return candidates & (rank < count.unsqueeze(-1))


def above_threshold(confidence: torch.Tensor, candidates: torch.Tensor, tau: float) -> torch.Tensor:
    """Candidates whose confidence reaches ``tau``, and at least the most confident one per row.

    confidence, candidates (N, D); returns (N, D) bool.
    """
    chosen = candidates & (confidence >= tau)
    short = candidates.any(-1) & ~chosen.any(-1)  # (N,) rows that would reveal nothing
    if bool(short.any()):
        best = confidence.masked_fill(~candidates, float("-inf")).argmax(-1)  # (N,)
        rows = short.nonzero().squeeze(-1)
        chosen[rows, best[rows]] = True
    return chosen


class RevealPlan:
    """What is known before sampling about which steps reveal digits.

    ancestral: every free digit's reveal step, grouped by step (``reveals_at(k)`` gives the
    tokens that reveal a digit at step k and which of their digits, without any tensor work);
    counted strategies: how many digits each sample reveals per step (``count_at(k)``);
    threshold: nothing (any step may reveal while digits are masked). ``revealed_at(k)`` (N,) is
    the number of digits each sample reveals at step k when known in advance (else None), and
    ``next_step(k)`` the next step after k at which some sample can reveal (T + 1 when none can).
    """

    def __init__(
        self,
        strategy: str,
        candidates: torch.Tensor,
        cdf: torch.Tensor,
        start: int,
        gen: torch.Generator,
        marginal: bool = False,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        self.start = start
        self.steps = start + int(cdf.numel())
        self.counts: torch.Tensor | None = None  # (N, T - start) digits revealed per sample and step
        self.reveal_step: torch.Tensor | None = None  # ancestral: (N, L, ell) step of each free digit
        self._tokens: torch.Tensor | None = None  # ancestral: (M,) flat tokens, grouped by step
        self._newly: torch.Tensor | None = None  # ancestral: (M, ell) which digits reveal then
        self._offsets: list[int] = []
        self._digits: torch.Tensor | None = None  # ancestral: (D,) flat digit indices, by step
        self._digit_offsets: list[int] = []
        self._u = torch.zeros(0, dtype=torch.float64)  # float64 uniforms: draws over large C
        self._u_digits: torch.Tensor | None = None
        if strategy == "ancestral":
            n, length, ell = candidates.shape
            u = torch.rand(candidates.shape, generator=gen, dtype=torch.float64)  # (N, L, ell)
            self.reveal_step = ancestral_reveal_steps(candidates, cdf, start, u)  # (N, L, ell)
            reveal_step = self.reveal_step.view(n * length, ell)
            cand = candidates.view(n * length, ell)
            # one (step, token) pair per token and step at which it reveals a digit, sorted by step
            token = torch.arange(n * length).unsqueeze(-1).expand(-1, ell)[cand]  # (D,)
            pairs = torch.unique(reveal_step[cand] * (n * length) + token)  # sorted
            step_of = pairs // (n * length)
            self._tokens = pairs % (n * length)  # (M,)
            self._newly = reveal_step[self._tokens] == step_of.unsqueeze(-1)  # (M, ell)
            self._offsets = torch.searchsorted(step_of, torch.arange(self.steps + 2)).tolist()
            # the same reveals as flat digit indices into (N, L, ell), grouped by step
            digit_step = reveal_step.view(-1)
            order = torch.argsort(torch.where(cand.view(-1), digit_step, self.steps + 1), stable=True)
            self._digits = order[: int(cand.sum())]  # (D,)
            self._digit_offsets = torch.searchsorted(
                digit_step[self._digits], torch.arange(self.steps + 2)
            ).tolist()
            self.counts = torch.zeros(n, self.steps - start, dtype=torch.int64)
            sample = torch.arange(n).view(n, 1, 1).expand(candidates.shape)[candidates]
            self.counts.index_put_(
                (sample, reveal_step[cand] - start - 1), torch.ones_like(sample), accumulate=True
            )
            active = torch.unique(step_of).tolist()
            # the uniforms of the token draws, one per (step, token) pair (and per digit for
            # marginal reveals), drawn here once instead of step by step
            self._u = torch.rand(self._tokens.shape, generator=gen, dtype=torch.float64)  # (M,)
            self._u_digits = (
                torch.rand(self._newly.shape, generator=gen, dtype=torch.float64) if marginal else None
            )
        elif strategy in COUNTED:
            self.counts = scheduled_counts(candidates, cdf)  # (N, T - start)
            active = (start + 1 + (self.counts.sum(0) > 0).nonzero().squeeze(-1)).tolist()
        else:
            active = list(range(start + 1, self.steps + 1)) if bool(candidates.any()) else []
        self._active = sorted(int(k) for k in active)
        # (T - start, N) views, one row per step: cheap to read in the loop
        self._per_step = self.counts.t().contiguous() if self.counts is not None else None

    def active_steps(self) -> list[int]:
        """The steps after ``start`` at which some sample may reveal a digit, in order."""
        return list(self._active)

    def next_step(self, k: int) -> int:
        """The first step after ``k`` at which some sample may reveal a digit (T + 1 if none)."""
        i = bisect.bisect_right(self._active, k)
        return self._active[i] if i < len(self._active) else self.steps + 1

    def count_at(self, k: int) -> torch.Tensor:
        """(N,) digits each sample reveals at step k (ancestral and counted strategies)."""
        assert self._per_step is not None
        return self._per_step[k - self.start - 1]

    def uniforms_at(self, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Ancestral, step k: the token draws' uniforms (K,) and, for marginal reveals, (K, ell)."""
        a, b = self._offsets[k], self._offsets[k + 1]
        return self._u[a:b], None if self._u_digits is None else self._u_digits[a:b]

    def reveals_at(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ancestral, step k: the revealing tokens (K,), their new digits (K, ell), as flat (E,).

        Tokens are flat indices into (N L,); the digits also as flat indices into (N, L, ell).
        """
        assert self._tokens is not None and self._newly is not None
        a, b = self._offsets[k], self._offsets[k + 1]
        c, d = self._digit_offsets[k], self._digit_offsets[k + 1]
        return self._tokens[a:b], self._newly[a:b], self._digits[c:d]
