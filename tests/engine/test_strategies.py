"""Reveal strategies: confidence / margin / entropy orders and threshold decoding (and ancestral)."""

import pytest
import torch

from engine import (
    CancelToken,
    SampleRequest,
    branch,
    high_digits_condition,
    iter_sample,
    sample,
    text_condition,
    text_to_tokens,
)
from engine.api import STRATEGIES
from engine.prime import time_grid
from engine.prime.filter import digit_log_marginals, filtered_log_probs
from engine.sampling.strategies import (
    above_threshold,
    digit_scores,
    most_certain,
    reveal_cdf,
    scheduled_counts,
)

from ._tiny import tiny_image_model, tiny_text_model


def _conditioned_image_request(model, strategy, **kw):
    codec = model.codec
    base = sample(model, SampleRequest(num_samples=1, steps=8, seed=0)).tokens[0]
    where = torch.zeros(model.config.seq_length, dtype=torch.bool)
    where[:6] = True  # keep the high digit of the first six pixels
    cond = high_digits_condition(codec, base, 1, where=where)
    return SampleRequest(num_samples=4, steps=24, seed=7, strategy=strategy, condition=cond, **kw), cond


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("reveal", ["joint", "marginal"])
def test_strategy_keeps_visible_and_conditioned_digits_and_ends_valid(strategy, reveal):
    model = tiny_image_model(num_classes=17, ell=2)  # b = 5: codes 17..24 are invalid
    codec = model.codec
    request, cond = _conditioned_image_request(model, strategy, reveal=reveal, temperature=1.5)
    result = sample(model, request)
    traj = result.trajectory
    fixed = cond.fixed.expand(traj.shape)
    prev = traj.state_at(0)
    assert torch.equal(prev[fixed], cond.digits.expand(traj.shape)[fixed])
    for k in range(1, request.steps + 1):
        cur = traj.state_at(k)
        visible = prev != codec.mask
        assert torch.equal(cur[visible], prev[visible])  # never changes a visible digit
        assert torch.equal(cur[fixed], prev[fixed])
        decided = (cur != codec.mask).all(-1)
        assert bool((codec.decode(cur)[decided] >= 0).all())  # never an invalid code
        prev = cur
    assert not bool((prev == codec.mask).any())
    assert result.tokens.min() >= 0 and result.tokens.max() < 17
    assert torch.equal(codec.decode(prev), result.tokens)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategy_is_deterministic_and_caching_changes_nothing(strategy):
    model = tiny_text_model(ell=2, seq_len=12)
    codec = model.codec
    cond = text_condition(codec, 12, text_to_tokens("Hi"), text_to_tokens("."))
    request = SampleRequest(num_samples=3, steps=30, seed=5, strategy=strategy, condition=cond, threshold=0.3)
    a, b = sample(model, request), sample(model, request)
    c = sample(model, request.replace(cache=False))
    d = sample(model, request.replace(record_predictions=True))
    assert torch.equal(a.tokens, b.tokens)
    for other in (c, d):
        assert torch.equal(a.tokens, other.tokens)
        for k in range(31):
            assert torch.equal(a.trajectory.state_at(k), other.trajectory.state_at(k))
        assert torch.equal(a.trajectory.idle, other.trajectory.idle)
    assert a.nfe == d.nfe and all(x <= y for x, y in zip(a.nfe, c.nfe, strict=True))
    assert not torch.equal(a.tokens, sample(model, request.replace(seed=6)).tokens)
    for row in a.tokens:
        text = bytes(row.tolist())
        assert text.startswith(b"Hi") and text.endswith(b".")


def test_threshold_one_reveals_one_digit_per_step_and_zero_reveals_all_at_once():
    model = tiny_image_model(num_classes=16, ell=2, size=3)  # b^ell = C: no digit is forced
    digits = model.config.seq_length * 2
    one = sample(
        model, SampleRequest(num_samples=3, steps=digits, seed=1, strategy="threshold", threshold=1.0)
    )
    assert bool((one.trajectory.revealed == 1).all())
    assert one.nfe == [digits] * 3 and one.idle_steps == [0] * 3
    zero = sample(
        model, SampleRequest(num_samples=3, steps=digits, seed=1, strategy="threshold", threshold=0.0)
    )
    assert zero.trajectory.revealed[0].tolist() == [digits] * 3
    assert bool((zero.trajectory.revealed[1:] == 0).all())
    assert zero.nfe == [1] * 3 and zero.idle_steps == [digits - 1] * 3


def test_threshold_adapts_the_calls_to_the_sample():
    # C = 17, b = 5: a token whose high digit is 3 has only codes 15 and 16 left, so its low
    # digit is confident (about 0.5) where the others are not (about 0.2)
    model = tiny_image_model(num_classes=17, ell=2)
    request = SampleRequest(num_samples=4, steps=64, seed=2, strategy="threshold", threshold=0.3)
    result = sample(model, request)
    assert all(1 < n < 32 for n in result.nfe)  # several digits in some calls, one at least
    revealed = result.trajectory.revealed
    assert bool((revealed.sum(0) == 32).all())
    for i in range(4):  # a sample reveals on consecutive steps from the first, then idles
        steps = (revealed[:, i] > 0).nonzero().flatten().tolist()
        assert steps == list(range(len(steps))) and len(steps) == result.nfe[i]


@pytest.mark.parametrize("strategy", ["confidence", "margin", "entropy"])
def test_counted_strategies_follow_the_schedules_expected_reveals(strategy):
    model = tiny_image_model(num_classes=17, ell=2)
    request = SampleRequest(num_samples=2, steps=40, seed=3, strategy=strategy, time_warp=2.0)
    result = sample(model, request)
    free = torch.ones(2, 16, 2, dtype=torch.bool)
    alpha = model.schedule.alpha(time_grid(40, 2.0))
    expected = scheduled_counts(free, reveal_cdf(alpha, 0))  # (N, T)
    assert torch.equal(result.trajectory.revealed.t().long(), expected)
    assert result.idle_steps == [int((expected[0] == 0).sum())] * 2


def test_confidence_reveals_the_most_confident_digits_first():
    model = tiny_image_model(num_classes=17, ell=2, seed=4)
    codec = model.codec
    result = sample(model, SampleRequest(num_samples=2, steps=8, seed=0, strategy="confidence"))
    y0 = result.trajectory.state_at(0)
    with torch.no_grad():
        logp = filtered_log_probs(model(y0), y0, codec)
    conf = digit_log_marginals(logp, codec).exp().max(-1).values  # (N, L, ell)
    first = result.trajectory.reveal_step == 1
    for i in range(2):
        chosen, others = conf[i][first[i]], conf[i][~first[i]]
        assert chosen.numel() == 4 and float(chosen.min()) >= float(others.max())


def test_strategies_branch_and_cancel_like_the_ancestral_sampler():
    model = tiny_text_model(ell=2, seq_len=8)
    for strategy in ("confidence", "threshold"):
        parent = sample(model, SampleRequest(num_samples=2, steps=16, seed=1, strategy=strategy))
        child = branch(model, parent.trajectory, 5, parent.request.replace(seed=9))
        for k in range(6):
            assert torch.equal(child.trajectory.state_at(k), parent.trajectory.state_at(k))
        assert not bool((child.trajectory.state_at(16) == model.codec.mask).any())
        token = CancelToken()
        gen = iter_sample(model, SampleRequest(num_samples=2, steps=16, seed=1, strategy=strategy), token)
        for _ in range(3):
            next(gen)
        token.cancel()
        with pytest.raises(StopIteration) as stop:
            next(gen)
        assert stop.value.value.cancelled and stop.value.value.steps_done == 3


def test_recorded_confidence_is_the_marginal_of_each_revealed_value():
    model = tiny_image_model(num_classes=17, ell=2)
    for strategy in ("ancestral", "entropy"):
        result = sample(
            model, SampleRequest(num_samples=2, steps=10, seed=2, strategy=strategy, record_predictions=True)
        )
        traj = result.trajectory
        conf = traj.confidence_at(10)
        assert bool(torch.isfinite(conf).all()) and float(conf.min()) > 0 and float(conf.max()) <= 1
        assert bool(torch.isnan(traj.confidence_at(0)).all())
        early = traj.confidence_at(3)
        assert torch.equal(torch.isfinite(early), (traj.reveal_step >= 1) & (traj.reveal_step <= 3))
    # the digits revealed at step 1 (nothing visible before): pi of their value at y_0
    y0 = traj.state_at(0)
    with torch.no_grad():
        marg = digit_log_marginals(filtered_log_probs(model(y0), y0, model.codec), model.codec).exp()
    y1 = traj.state_at(1)
    at1 = traj.reveal_step == 1
    expect = marg.gather(-1, y1.clamp(max=model.codec.base - 1).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(traj.confidence_at(1)[at1], expect[at1], atol=1e-3)


def test_digit_scores_and_choices():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]])  # two digits, b = 3
    log_marg = p.log().view(1, 2, 3)
    assert torch.allclose(digit_scores(log_marg, "confidence"), torch.tensor([[0.7, 0.4]]))
    assert torch.allclose(digit_scores(log_marg, "margin"), torch.tensor([[0.5, 0.0]]))
    entropy = -(p * p.log()).sum(-1)
    assert torch.allclose(digit_scores(log_marg, "entropy"), -entropy.view(1, 2))
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.8], [0.3, 0.3, 0.2, 0.1]])
    cand = torch.tensor([[True, False, True, True], [True, True, True, True]])
    chosen = most_certain(scores, cand, torch.tensor([2, 1]))
    assert chosen.tolist() == [[False, False, True, True], [True, False, False, False]]  # ties: first
    over = above_threshold(scores, cand, 0.75)
    assert over.tolist() == [[False, False, False, True], [True, False, False, False]]  # >= 1 per row
    assert not above_threshold(scores, torch.zeros_like(cand), 0.0).any()


def test_strategy_and_threshold_are_validated():
    with pytest.raises(ValueError, match="strategy must be one of"):
        SampleRequest(strategy="greedy")
    with pytest.raises(ValueError, match="threshold must be in"):
        SampleRequest(threshold=1.5)
