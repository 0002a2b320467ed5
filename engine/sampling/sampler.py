"""The Prime sampler as a generator: yields a SampleStep per step, returns a SampleResult.

Time runs from t = 1 to t = 0 in T steps. At each step the (cached) network output gives the
filtered p(x | y_t); a token is drawn per position and each masked digit is revealed with
probability r = (alpha_s - alpha_t) / (1 - alpha_t). Visible digits never change (except by the
optional corrector, never on conditioned digits). The last step reveals everything.
"""

from __future__ import annotations

import time
from collections.abc import Generator

import torch

from engine.api import CancelToken, SampleRequest, SampleResult, SampleStep
from engine.models import PrimeModel
from engine.prime.codec import Codec
from engine.prime.filter import consistent_mask
from engine.prime.schedule import time_grid
from engine.sampling.conditioning import initial_state
from engine.sampling.step import (
    draw_marginal_digits,
    draw_tokens,
    repair_inconsistent,
    reveal_mask,
    tempered_log_probs,
)
from engine.sampling.trajectory import Trajectory


def _temperature(request: SampleRequest, t: float) -> float:
    if request.temperature_end is None:
        return request.temperature
    return request.temperature_end + (request.temperature - request.temperature_end) * t


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
    started = time.perf_counter()
    codec, schedule = model.codec, model.schedule
    device = next(model.parameters()).device
    n = traj.num_samples
    T = traj.steps
    start = traj.steps_done
    gen = torch.Generator(device="cpu").manual_seed(request.seed)
    y = traj.state_at(start).to(device)  # (N, L, ell)
    fixed = traj.fixed.to(device)
    logits: torch.Tensor | None = None  # (N, L, C) cached network output
    stale = torch.ones(n, dtype=torch.bool, device=device)  # state changed since the last call
    nfe = traj.called[:start].sum(0, dtype=torch.int64).to(device)
    cacheable = request.cache and not model.time_conditioned  # caching is exact only if t is ignored
    # r_k = (alpha_s - alpha_t) / (1 - alpha_t) for every step, once (the last step reveals all)
    reveal_r = [
        schedule.reveal_probability(float(a), float(b))
        for a, b in zip(traj.times[:-1], traj.times[1:], strict=True)
    ]
    was_training = model.training
    model.eval()
    try:
        for k in range(start + 1, T + 1):
            if cancel is not None and cancel.cancelled:
                break
            t, s = float(traj.times[k - 1]), float(traj.times[k])
            has_masked = (y == codec.mask).flatten(1).any(-1)  # (N,)
            call = has_masked & stale if cacheable else has_masked
            logits = _evaluate(model, y, call, logits)
            nfe += call
            # fixed amount of randomness per step, whatever was cached
            u_tok = torch.rand(y.shape[:2], generator=gen)  # (N, L)
            u_dig = torch.rand(y.shape, generator=gen) if request.reveal == "marginal" else None
            v = torch.rand(y.shape, generator=gen)  # (N, L, ell)
            r = 1.0 if k == T else reveal_r[k - 1]
            newly = reveal_mask(y, fixed, r, _on(v, device), codec)  # (N, L, ell)
            # only tokens that reveal a digit this step need the filter and a draw: (K,) positions
            drawn = newly.any(-1).nonzero(as_tuple=True)
            y_new = y
            if drawn[0].numel():
                y_new = y.clone()
                temperature = _temperature(request, t)
                logp = tempered_log_probs(
                    logits[drawn], y[drawn], codec, temperature, request.top_k, request.top_p
                )
                joint = codec.encode(draw_tokens(logp, _on(u_tok, device)[drawn]), check=False)  # (K, ell)
                old, new_k = y[drawn], newly[drawn]
                if u_dig is None:
                    y_new[drawn] = torch.where(new_k, joint, old)
                else:
                    marginal = draw_marginal_digits(logp, codec, _on(u_dig, device)[drawn])
                    y_new[drawn] = repair_inconsistent(
                        torch.where(new_k, marginal, old), joint, new_k, old, codec
                    )
            changed = newly.flatten(1).any(-1)  # (N,)
            prediction = _predict(logits, y, codec) if traj.predictions is not None else None
            traj.record_step(k, newly, y_new, call, changed, prediction)
            y = y_new
            if request.corrector > 0 and k < T:
                y, corrected, c_called = _correct(model, request, y, fixed, s, gen)  # s > 0 here
                nfe += c_called
                if bool(corrected.any()):
                    traj.record_changes(k, corrected, y)
                    traj.called[k - 1] += c_called.cpu().to(torch.int16)
                    traj.idle[k - 1] &= ~corrected.flatten(1).any(-1).cpu()
                changed = changed | c_called  # cached logits no longer match y for those
            stale = changed
            preview = k % request.preview_every == 0 or k == T
            yield SampleStep(
                step=k,
                steps=T,
                t=t,
                s=s,
                revealed=traj.revealed[k - 1].clone(),
                idle=traj.idle[k - 1].clone(),
                nfe=nfe.cpu().clone(),
                state=y.cpu().clone() if preview else None,
                prediction=prediction.cpu().clone() if (preview and prediction is not None) else None,
                seconds=time.perf_counter() - started,
            )
    finally:
        model.train(was_training)
    done = traj.steps_done
    return SampleResult(
        tokens=codec.decode(y.cpu()),
        trajectory=traj,
        nfe=[int(v) for v in nfe.cpu()],
        idle_steps=traj.idle_steps(),
        seconds=time.perf_counter() - started,
        cancelled=done < T,
        steps_done=done,
        request=request,
    )


def _predict(logits: torch.Tensor, y: torch.Tensor, codec: Codec) -> torch.Tensor:
    """The model's guess of the clean tokens (N, L); decided tokens keep their value.

    The most likely consistent token: the mode of p(x | y) at any temperature, top-k or top-p.
    """
    prediction = codec.decode(y)
    active = (y == codec.mask).any(-1)  # (N, L)
    if bool(active.any()):
        ok = consistent_mask(y[active], codec)  # (K, C)
        prediction[active] = logits[active].masked_fill(~ok, float("-inf")).argmax(-1)
    return prediction


def _on(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device`` (random numbers are drawn on the CPU generator)."""
    return x if device.type == "cpu" else x.to(device)


@torch.no_grad()
def _evaluate(
    model: PrimeModel, y: torch.Tensor, rows: torch.Tensor, cached: torch.Tensor | None
) -> torch.Tensor:
    """Network output for the rows that need it, reusing ``cached`` for the others. (N, L, C)."""
    if cached is None:
        cached = torch.zeros(*y.shape[:2], model.config.num_classes, device=y.device)
    if bool(rows.all()):
        return model(y).float()
    if bool(rows.any()):
        cached = cached.clone()
        cached[rows] = model(y[rows]).float()
    return cached


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
    u_tok = torch.rand(y.shape[:2], generator=gen)  # (N, L)
    chosen = (y != codec.mask) & ~fixed & (u < request.corrector)
    rows = chosen.flatten(1).any(-1)  # (N,)
    if not bool(rows.any()):
        return y, torch.zeros_like(chosen), rows
    y_masked = torch.where(chosen, torch.full_like(y, codec.mask), y)
    logits = _evaluate(model, y_masked, rows, None)
    logp = tempered_log_probs(logits, y_masked, codec, _temperature(request, t), request.top_k, request.top_p)
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
