"""Exact idle skipping and the planned hot path of the ancestral sampler.

The reveal plan (:class:`engine.sampling.strategies.RevealPlan`) knows before sampling which
steps reveal anything; the steps between them change nothing, so :func:`idle_steps` records a
run of them at once and yields their snapshots without tensor work, and :func:`run_planned` is
the loop of the common case (ancestral, joint reveal, caching, no corrector, no recorded
predictions), whose steps only evaluate the network and draw the K revealing tokens. The helpers
the general loop shares (network evaluation with a cache, temperature, consistency tables) live
here too.
"""

from __future__ import annotations

import time
from collections.abc import Generator

import torch

from engine.api import CancelToken, SampleRequest, SampleStep
from engine.models import PrimeModel
from engine.prime.codec import Codec
from engine.sampling.step import ConsistentSets, draw_filtered
from engine.sampling.strategies import RevealPlan
from engine.sampling.trajectory import Trajectory


def temperature_at(request: SampleRequest, t: float) -> float:
    """The request's temperature at time t (constant, or linear from t = 1 to t = 0)."""
    if request.temperature_end is None:
        return request.temperature
    return request.temperature_end + (request.temperature - request.temperature_end) * t


@torch.no_grad()
def evaluate(
    model: PrimeModel,
    y: torch.Tensor,
    rows: torch.Tensor,
    cached: torch.Tensor | None,
    all_rows: bool | None = None,
) -> torch.Tensor:
    """Network output for the rows that need it, reusing ``cached`` for the others. (N, L, C).

    ``all_rows``: whether every row needs it, when the caller already knows.
    """
    if all_rows is None:
        all_rows = bool(rows.all())
    if all_rows:
        return model(y).float()
    if cached is None:
        cached = torch.zeros(*y.shape[:2], model.config.num_classes, device=y.device)
    if bool(rows.any()):
        cached[rows] = model(y[rows]).float()  # in place: the cache belongs to the sampling loop
    return cached


_SETS: dict[tuple, ConsistentSets] = {}


def consistent_sets(codec: Codec, device: torch.device) -> ConsistentSets:
    """The consistency table of a codec on a device, built once per (C, ell, permutation, device)."""
    perm = None if codec.permutation is None else tuple(codec.permutation.tolist())
    key = (codec.num_classes, codec.ell, perm, str(device))
    if key not in _SETS:
        _SETS[key] = ConsistentSets(codec).to(device)
    return _SETS[key]


class IdleSnapshot:
    """Tensors shared by the snapshots of idle steps (nobody mutates a snapshot's tensors)."""

    def __init__(self, n: int) -> None:
        self.revealed = torch.zeros(n, dtype=torch.int32)
        self.idle = torch.ones(n, dtype=torch.bool)
        self.nfe = torch.zeros(n, dtype=torch.int64)
        self.state: torch.Tensor | None = None


def idle_steps(
    traj: Trajectory,
    k: int,
    until: int,
    times: list[float],
    snap: IdleSnapshot,
    request: SampleRequest,
    y: torch.Tensor,
    prediction: torch.Tensor | None,
    started: float,
    cancel: CancelToken | None,
) -> Generator[SampleStep, None, bool]:
    """Record steps k+1 .. until-1 as idle for every sample and yield a snapshot of each.

    Nothing changes on these steps, so the record is one slice; each snapshot shares the same
    tensors. Returns True when cancelled (steps_done is then the last step yielded).
    """
    traj.idle[k : until - 1] = True
    if prediction is not None and traj.predictions is not None:
        traj.predictions[k : until - 1] = prediction.cpu().to(traj.predictions.dtype)
    pred_cpu = prediction.cpu() if prediction is not None else None
    steps = traj.steps
    for j in range(k + 1, until):
        if cancel is not None and cancel.cancelled:
            traj.idle[j - 1 : until - 1] = False  # not taken
            return True
        traj.steps_done = j
        preview = j % request.preview_every == 0 or j == steps
        if preview and snap.state is None:
            snap.state = y.cpu().clone()
        yield SampleStep(
            step=j,
            steps=steps,
            t=times[j - 1],
            s=times[j],
            revealed=snap.revealed,
            idle=snap.idle,
            nfe=snap.nfe,
            state=snap.state if preview else None,
            prediction=pred_cpu if preview else None,
            seconds=time.perf_counter() - started,
        )
    return False


def run_planned(
    model: PrimeModel,
    request: SampleRequest,
    traj: Trajectory,
    plan: RevealPlan,
    y: torch.Tensor,
    consistent: ConsistentSets,
    started: float,
    cancel: CancelToken | None,
) -> Generator[SampleStep, None, torch.Tensor]:
    """The hot path: ancestral sampling, joint reveal, caching, no corrector, no predictions.

    The plan knows every digit's reveal step, so it knows which samples reveal (and so call the
    network) at each step and the NFE after it; a step only evaluates the network, draws the K
    revealing tokens and writes their digits into y. The record is written once at the end (the
    trajectory is private to the generator until it returns). Returns the final y (N, L, ell).
    """
    n, length, ell = y.shape
    T, start = traj.steps, traj.steps_done
    times = traj.times.tolist()
    device = y.device
    assert plan.counts is not None and plan.reveal_step is not None
    revealed = plan.counts.t().contiguous()  # (T - start, N) digits revealed per step
    calls = revealed > 0  # every revealing step changes the sample, so the next one calls again
    nfe = traj.called[:start].sum(0, dtype=torch.int64) + calls.cumsum(0)  # (T - start, N)
    idle = ~calls
    # everything a step needs, prepared here in one go (a step's own work stays minimal)
    rows = {k: k - start - 1 for k in plan.active_steps()}
    work = [
        (
            k,
            calls[rows[k]].to(device),
            bool(calls[rows[k]].all()),
            *(v.to(device) for v in plan.reveals_at(k)[:2]),
            plan.uniforms_at(k)[0].to(device),
            revealed[rows[k]],
            idle[rows[k]],
            nfe[rows[k]],
        )
        for k in plan.active_steps()
    ]
    y2 = y.view(n * length, ell)  # a view: writing y2 writes y
    logits: torch.Tensor | None = None
    snap = IdleSnapshot(n)
    snap.nfe = traj.called[:start].sum(0, dtype=torch.int64)
    done = start
    was_training = model.training
    model.eval()
    try:
        for k, call, all_called, tokens, newly, u_tok, revealed_k, idle_k, nfe_k in [
            *work,
            (T + 1,) + (None,) * 8,
        ]:
            if k > done + 1:  # steps done+1 .. k-1 reveal nothing
                stop = yield from idle_steps(
                    traj, done, min(k, T + 1), times, snap, request, y, None, started, cancel
                )
                done = traj.steps_done
                if stop:
                    break
            if k > T or (cancel is not None and cancel.cancelled):
                break
            logits = evaluate(model, y, call, logits, all_called)
            lg = logits.view(n * length, -1)[tokens]  # (K, C) the revealing tokens
            temperature = temperature_at(request, times[k - 1])
            if ell == 1:  # a revealing token is fully masked and reveals its one digit
                x = draw_filtered(lg, None, u_tok, consistent, temperature, request.top_k, request.top_p)
                y2[tokens] = consistent.token_digits[x]
            else:
                old = y2[tokens]  # (K, ell)
                x = draw_filtered(lg, old, u_tok, consistent, temperature, request.top_k, request.top_p)
                y2[tokens] = torch.where(newly, consistent.token_digits[x], old)
            done = traj.steps_done = k
            snap.nfe, snap.state = nfe_k, None
            preview = k % request.preview_every == 0 or k == T
            yield SampleStep(
                step=k,
                steps=T,
                t=times[k - 1],
                s=times[k],
                revealed=revealed_k,  # rows of tensors nobody changes
                idle=idle_k,
                nfe=nfe_k,
                state=y.cpu().clone() if preview else None,
                prediction=None,
                seconds=time.perf_counter() - started,
            )
    finally:
        model.train(was_training)
        rows = slice(0, done - start)
        traj.record_steps(start, done, plan.reveal_step, y.cpu(), calls[rows], revealed[rows])
    return y
