"""The Prime sampler as a generator: yields a SampleStep per step, returns a SampleResult.

Time runs from t = 1 to t = 0 in T steps. At each step the (cached) network output gives the
filtered p(x | y_t); a token is drawn for every position that reveals a digit, and the request's
strategy (:mod:`engine.sampling.strategies`) decides which masked digits are revealed. The
default, ancestral, reveals each masked digit with probability r = (alpha_s - alpha_t) /
(1 - alpha_t): every free digit's reveal step is drawn up front from that distribution, so the
loop jumps from one step that reveals something to the next and idle steps cost no network call
and no tensor work (they are still recorded and yielded). Visible digits never change (except by
the optional corrector, never on conditioned digits; ``corrector_start`` limits it to the late
steps). The last step reveals everything.
"""

from __future__ import annotations

import time
from collections.abc import Generator

import torch

from engine.api import CancelToken, SampleRequest, SampleResult, SampleStep
from engine.models import PrimeModel
from engine.prime.codec import Codec
from engine.prime.filter import digit_log_marginals
from engine.prime.schedule import time_grid
from engine.sampling.conditioning import initial_state
from engine.sampling.planned import (
    IdleSnapshot,
    consistent_sets,
    evaluate,
    idle_steps,
    run_planned,
    temperature_at,
)
from engine.sampling.step import (
    ConsistentSets,
    draw_filtered,
    draw_marginal_digits,
    draw_tokens,
    repair_inconsistent,
    tempered_log_probs,
)
from engine.sampling.strategies import (
    RevealPlan,
    above_threshold,
    digit_scores,
    most_certain,
    reveal_cdf,
)
from engine.sampling.trajectory import Trajectory


def iter_sample(
    model: PrimeModel, request: SampleRequest, cancel: CancelToken | None = None
) -> Generator[SampleStep, None, SampleResult]:
    """Sample ``request.num_samples`` items; see the module docstring."""
    codec = model.codec
    times = time_grid(request.steps, request.time_warp)
    y0, fixed = initial_state(codec, model.config.seq_length, request.num_samples, request.condition)
    traj = Trajectory(codec, times, y0, fixed, request.record_predictions)
    return (yield from _run(model, request, traj, cancel))


def iter_branch(
    model: PrimeModel,
    parent: Trajectory,
    step: int,
    request: SampleRequest,
    cancel: CancelToken | None = None,
) -> Generator[SampleStep, None, SampleResult]:
    """Continue sampling from the parent's state after ``step`` steps with the request's seed.

    The child's record for steps 0..step equals the parent's; request.steps must equal parent.steps
    and request.num_samples must equal the parent's (or be 1 with a one-sample parent).
    """
    if request.steps != parent.steps:
        raise ValueError(
            f"a branch keeps the parent's time grid: steps must be {parent.steps}, got {request.steps}"
        )
    if request.num_samples != parent.num_samples:
        raise ValueError(
            f"a branch has the parent's {parent.num_samples} samples, got num_samples={request.num_samples}"
        )
    if request.condition is not None:
        raise ValueError("a branch keeps the parent's conditioning; request.condition must be None")
    if parent.codec.num_classes != model.codec.num_classes or parent.codec.ell != model.codec.ell:
        raise ValueError("a branch must use a model with the parent's codec (same C and ell)")
    traj = parent.truncated(step, request.record_predictions)
    return (yield from _run(model, request, traj, cancel))


def _run(
    model: PrimeModel, request: SampleRequest, traj: Trajectory, cancel: CancelToken | None
) -> Generator[SampleStep, None, SampleResult]:
    """The sampling loop from ``traj.steps_done`` to T: one SampleStep per step, idle ones cheap.

    Ancestral sampling with joint reveal, caching, no corrector and no recorded predictions (the
    CLI's and the benchmarks' case) runs :func:`run_planned`; this loop serves every other
    setting and gives the same samples. Only steps at which some sample can reveal a digit do
    any work (network call, draws, record); the steps in between change nothing and are recorded
    as idle in one slice. With caching off or a corrector every step is visited; with recorded
    predictions (which need the network output at the step after a change) so is the step after
    each change. A step works on the K tokens that reveal a digit in it: ``tokens`` (K,) flat
    indices into the (N L, ell) state.
    """
    started = time.perf_counter()
    codec = model.codec
    device = next(model.parameters()).device
    n, T, start = traj.num_samples, traj.steps, traj.steps_done
    gen = torch.Generator(device="cpu").manual_seed(request.seed)
    y = traj.state_at(start).to(device)  # (N, L, ell)
    length, ell = y.shape[1], y.shape[2]
    fixed = traj.fixed.to(device)
    candidates = (y == codec.mask) & ~fixed  # (N, L, ell) free masked digits
    cdf = reveal_cdf(model.schedule.alpha(traj.times), start)
    plan = RevealPlan(request.strategy, candidates.cpu(), cdf, start, gen, request.reveal == "marginal")
    consistent = consistent_sets(codec, device)
    times = traj.times.tolist()
    remaining = candidates.flatten(1).sum(-1)  # (N,) free masked digits left
    logits: torch.Tensor | None = None  # (N, L, C) cached network output
    stale = torch.ones(n, dtype=torch.bool, device=device)  # state changed since the last call
    nfe = traj.called[:start].sum(0, dtype=torch.int64).to(device)
    cacheable = request.cache and not model.time_conditioned  # caching is exact only if t is ignored
    visit_all = not cacheable or request.corrector > 0
    record = traj.predictions is not None
    if record and traj.reveal_confidence is None:
        traj.reveal_confidence = torch.full(traj.shape, float("nan"), dtype=torch.float16)
    if request.strategy == "ancestral" and request.reveal == "joint" and not (visit_all or record):
        y = yield from run_planned(model, request, traj, plan, y, consistent, started, cancel)
        return _result(codec, y, traj, request, started)
    # the ancestral and counted strategies know in advance which steps reveal; threshold and the
    # visits for predictions need to know which samples still have masked digits
    track = record or visit_all or request.strategy == "threshold"
    snap = IdleSnapshot(n)
    prediction: torch.Tensor | None = None
    was_training = model.training
    model.eval()
    try:
        k = start
        while k < T:
            has_masked = remaining > 0 if track else None  # (N,)
            if visit_all or (record and bool((has_masked & stale).any())):
                nxt = k + 1
            elif has_masked is not None and not bool(has_masked.any()):
                nxt = T + 1
            else:
                nxt = plan.next_step(k)
            if nxt > k + 1:  # steps k+1 .. nxt-1 reveal nothing for any sample: record them at once
                if record and logits is not None:
                    prediction = _predict(logits, y, codec, consistent)
                stop = yield from idle_steps(
                    traj, k, min(nxt, T + 1), times, snap, request, y, prediction, started, cancel
                )
                k = traj.steps_done
                if stop or k >= T:
                    break
            if cancel is not None and cancel.cancelled:
                break
            k += 1
            t, s = times[k - 1], times[k]
            counted = plan.count_at(k).to(device) if plan.counts is not None else None
            # rows that need the network output now
            need = has_masked if has_masked is not None else counted > 0
            call = need & stale if cacheable else need
            logits = evaluate(model, y, call, logits)
            nfe += call
            stale &= ~call
            temperature = temperature_at(request, t)
            if request.strategy == "ancestral":
                tokens, newly, digits = (v.to(device) for v in plan.reveals_at(k))  # (K,), (K, ell), (E,)
                logp = log_marg = None
            else:
                tokens, newly, logp, log_marg = _choose(
                    request, plan, k, logits, y, candidates, need, codec, temperature
                )
                digits = (tokens.unsqueeze(-1) * ell + torch.arange(ell, device=device))[newly]  # (E,)
            conf = None
            if record:  # the guess made at this step, from the state before it
                prediction = _predict(logits, y, codec, consistent)
            if tokens.numel():
                y2 = y.view(n * length, ell)
                # fixed amount of randomness per revealing step, whatever was cached or skipped
                if request.strategy == "ancestral":
                    u_tok, u_dig = (None if v is None else v.to(device) for v in plan.uniforms_at(k))
                else:
                    u_tok = _on(torch.rand(n * length, generator=gen, dtype=torch.float64), device)[tokens]
                    u_dig = (
                        _on(torch.rand(y.shape, generator=gen, dtype=torch.float64), device).view(
                            n * length, ell
                        )[tokens]
                        if request.reveal == "marginal"
                        else None
                    )
                old = y2[tokens]  # (K, ell)
                lg = logits.view(n * length, -1)[tokens]  # (K, C)
                if u_dig is None and logp is None and not record:  # the hot path
                    joint = consistent.token_digits[
                        draw_filtered(lg, old, u_tok, consistent, temperature, request.top_k, request.top_p)
                    ]  # (K, ell)
                    y2[tokens] = torch.where(newly, joint, old)  # in place: y is this loop's own tensor
                else:
                    if logp is None:
                        logp = tempered_log_probs(lg, old, codec, temperature, request.top_k, request.top_p)
                    joint = codec.encode(draw_tokens(logp, u_tok), check=False)  # (K, ell)
                    new_values = torch.where(newly, joint, old)
                    if u_dig is not None:
                        marginal = draw_marginal_digits(logp, codec, u_dig)
                        new_values = repair_inconsistent(
                            torch.where(newly, marginal, old), joint, newly, old, codec
                        )
                    if record:  # pi^{ij} of each revealed value
                        log_marg = digit_log_marginals(logp, codec) if log_marg is None else log_marg
                        index = new_values.clamp(max=codec.base - 1).unsqueeze(-1)
                        conf = log_marg.gather(-1, index).squeeze(-1).exp()[newly]  # (E,)
                    y2[tokens] = new_values
                if request.strategy != "ancestral":  # (the ancestral plan knows the candidates)
                    candidates.view(n * length, ell)[tokens] &= ~newly
            if request.strategy == "ancestral":
                revealed = counted
            else:
                revealed = _per_sample(tokens, newly, n, length)
            if track:
                remaining = remaining - revealed
            changed = revealed > 0  # (N,)
            traj.record_reveals(k, digits, y.view(-1)[digits], call, revealed, prediction, conf)
            if request.corrector > 0 and k < T and s <= request.corrector_start:
                y, corrected, c_called = _correct(model, request, y, fixed, s, gen)  # s > 0 here
                nfe += c_called
                if bool(corrected.any()):
                    traj.record_changes(k, corrected, y)
                    traj.called[k - 1] += c_called.cpu().to(torch.int16)
                    traj.idle[k - 1] &= ~corrected.flatten(1).any(-1).cpu()
                changed = changed | c_called  # cached logits no longer match y for those
            stale |= changed
            preview = k % request.preview_every == 0 or k == T
            snap.nfe = nfe.cpu().clone()
            snap.state = None
            yield SampleStep(
                step=k,
                steps=T,
                t=t,
                s=s,
                revealed=revealed.cpu(),  # a fresh tensor, or the plan's row (never changed)
                idle=~changed.cpu(),
                nfe=snap.nfe,
                state=y.cpu().clone() if preview else None,
                prediction=prediction.cpu().clone() if (preview and prediction is not None) else None,
                seconds=time.perf_counter() - started,
            )
    finally:
        model.train(was_training)
    return _result(codec, y, traj, request, started)


def _result(
    codec: Codec, y: torch.Tensor, traj: Trajectory, request: SampleRequest, started: float
) -> SampleResult:
    return SampleResult(
        tokens=codec.decode(y.cpu()),
        trajectory=traj,
        nfe=traj.nfe(),
        idle_steps=traj.idle_steps(),
        seconds=time.perf_counter() - started,
        cancelled=traj.steps_done < traj.steps,
        steps_done=traj.steps_done,
        request=request,
    )


def _choose(
    request: SampleRequest,
    plan: RevealPlan,
    k: int,
    logits: torch.Tensor,
    y: torch.Tensor,
    candidates: torch.Tensor,
    need: torch.Tensor,
    codec: Codec,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Non-ancestral strategies: which digits to reveal, from the filtered distribution.

    Scores every free masked digit of the rows in ``need`` (confidence, margin or entropy of its
    marginal) and picks by the strategy. Returns the revealing tokens (K,), their newly revealed
    digits (K, ell), and their log-probabilities (K, C) and digit log-marginals (K, ell, b).
    """
    n, length, ell = y.shape
    active = (candidates.any(-1) & need.unsqueeze(-1)).view(-1).nonzero().squeeze(-1)  # (A,) tokens
    y2 = y.view(n * length, ell)
    logp = tempered_log_probs(
        logits.view(n * length, -1)[active], y2[active], codec, temperature, request.top_k, request.top_p
    )
    log_marg = digit_log_marginals(logp, codec)  # (A, ell, b)
    score = torch.full((n * length, ell), float("-inf"), device=y.device)
    score[active] = digit_scores(log_marg, request.strategy)
    flat_score, flat_cand = score.view(n, length * ell), candidates.view(n, length * ell)
    if k == plan.steps:
        chosen = flat_cand
    elif request.strategy == "threshold":
        chosen = above_threshold(flat_score, flat_cand, request.threshold)
    else:
        chosen = most_certain(flat_score, flat_cand, plan.count_at(k).to(y.device))
    chosen_tok = chosen.view(n * length, ell)[active]  # (A, ell)
    pick = chosen_tok.any(-1)  # (A,)
    return active[pick], chosen_tok[pick], logp[pick], log_marg[pick]


def _per_sample(tokens: torch.Tensor, newly: torch.Tensor, n: int, length: int) -> torch.Tensor:
    """(N,) digits revealed per sample, from the revealing tokens (K,) and digits (K, ell)."""
    out = torch.zeros(n, dtype=torch.int64, device=tokens.device)
    return out.index_add_(0, tokens // length, newly.sum(-1))


def _predict(logits: torch.Tensor, y: torch.Tensor, codec: Codec, consistent: ConsistentSets) -> torch.Tensor:
    """The model's guess of the clean tokens (N, L); decided tokens keep their value.

    The most likely consistent token: the mode of p(x | y) at any temperature, top-k or top-p.
    """
    prediction = codec.decode(y)
    active = (y == codec.mask).any(-1)  # (N, L)
    if bool(active.any()):
        ok = consistent(y[active])  # (K, C)
        prediction[active] = logits[active].masked_fill(~ok, float("-inf")).argmax(-1)
    return prediction


def _on(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device`` (random numbers are drawn on the CPU generator)."""
    return x if device.type == "cpu" else x.to(device)


def _correct(
    model: PrimeModel,
    request: SampleRequest,
    y: torch.Tensor,
    fixed: torch.Tensor,
    t: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Corrector: re-mask a fraction of free visible digits and redraw them from p(x | y).

    Never touches conditioned digits. Returns (new y, changed digits mask, network called (N,)).
    """
    codec = model.codec
    u = torch.rand(y.shape, generator=gen).to(y.device)  # (N, L, ell)
    u_tok = torch.rand(y.shape[:2], generator=gen, dtype=torch.float64)  # (N, L)
    chosen = (y != codec.mask) & ~fixed & (u < request.corrector)
    rows = chosen.flatten(1).any(-1)  # (N,)
    if not bool(rows.any()):
        return y, torch.zeros_like(chosen), rows
    y_masked = torch.where(chosen, torch.full_like(y, codec.mask), y)
    logits = evaluate(model, y_masked, rows, None)
    logp = tempered_log_probs(
        logits, y_masked, codec, temperature_at(request, t), request.top_k, request.top_p
    )
    redrawn = codec.encode(draw_tokens(logp, u_tok), check=False)  # (N, L, ell)
    y_new = torch.where(chosen, redrawn, y)
    return y_new, chosen & (y_new != y), rows


def sample(model: PrimeModel, request: SampleRequest, cancel: CancelToken | None = None) -> SampleResult:
    """Drain :func:`iter_sample` and return its result."""
    return _drain(iter_sample(model, request, cancel))


def branch(
    model: PrimeModel,
    parent: Trajectory,
    step: int,
    request: SampleRequest,
    cancel: CancelToken | None = None,
) -> SampleResult:
    """Drain :func:`iter_branch` and return its result."""
    return _drain(iter_branch(model, parent, step, request, cancel))


def _drain(gen: Generator[SampleStep, None, SampleResult]) -> SampleResult:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
