import math

import pytest
import torch

from engine import (
    CancelToken,
    SampleRequest,
    branch,
    high_digits_condition,
    iter_sample,
    region_condition,
    sample,
    text_condition,
    text_to_tokens,
    tokens_to_text,
)
from engine.prime import Codec, time_grid
from engine.sampling.step import tempered_log_probs

from ._tiny import tiny_image_model, tiny_text_model


@pytest.mark.parametrize("reveal", ["joint", "marginal"])
@pytest.mark.parametrize("ell", [1, 2, 4])
def test_tokens_valid_and_visible_digits_never_change(reveal, ell):
    model = tiny_image_model(num_classes=17, ell=ell)  # b**ell > C for ell = 2, 3
    codec = model.codec
    result = sample(model, SampleRequest(num_samples=6, steps=12, seed=ell, reveal=reveal, temperature=2.0))
    traj = result.trajectory
    assert result.tokens.min() >= 0 and result.tokens.max() < 17
    prev = traj.state_at(0)
    for k in range(1, 13):
        cur = traj.state_at(k)
        visible = prev != codec.mask
        assert torch.equal(cur[visible], prev[visible])
        assert bool((codec.decode(cur)[(cur != codec.mask).all(-1)] >= 0).all())
        prev = cur
    assert not bool((prev == codec.mask).any())
    assert torch.equal(codec.decode(prev), result.tokens)


def test_state_at_reproduces_every_yielded_step():
    model = tiny_text_model(ell=4)
    gen = iter_sample(model, SampleRequest(num_samples=3, steps=20, seed=5, corrector=0.1))
    states = {}
    try:
        while True:
            step = next(gen)
            states[step.step] = step.state
    except StopIteration as stop:
        result = stop.value
    assert sorted(states) == list(range(1, 21))
    for k, state in states.items():
        assert torch.equal(result.trajectory.state_at(k), state)


def test_corrector_start_keeps_the_corrector_out_of_the_early_steps():
    model = tiny_image_model(ell=2)
    steps = 16
    times = time_grid(steps).tolist()
    request = SampleRequest(num_samples=6, steps=steps, seed=3, corrector=0.4)
    whole = sample(model, request).trajectory
    late = sample(model, request.replace(corrector_start=0.5)).trajectory

    def corrected_steps(traj):
        return sorted({step for step, index, _ in traj.events if index.numel()})

    assert corrected_steps(whole)[0] <= steps // 4  # the plain corrector works from the start
    late_steps = corrected_steps(late)
    assert late_steps, "the corrector should still change digits late in the run"
    # a step k goes from times[k - 1] to times[k]; the corrector follows it only when times[k] <= 0.5
    assert all(times[k] <= 0.5 for k in late_steps)
    assert sum(late.nfe()) < sum(whole.nfe())  # no corrector calls in the first half
    # 1.0 is the plain corrector
    same = sample(model, request.replace(corrector_start=1.0))
    assert torch.equal(same.tokens, sample(model, request).tokens)


def test_same_seed_same_output_and_caching_changes_nothing_but_nfe():
    model = tiny_image_model(ell=2)
    req = SampleRequest(num_samples=4, steps=64, seed=11)
    a, b = sample(model, req), sample(model, req)
    assert torch.equal(a.tokens, b.tokens)
    c = sample(model, req.replace(cache=False))
    assert torch.equal(a.tokens, c.tokens)
    for k in range(65):
        assert torch.equal(a.trajectory.state_at(k), c.trajectory.state_at(k))
    assert a.nfe == [64 - i for i in a.idle_steps]
    codec = model.codec
    steps_with_masked = sum(
        (c.trajectory.state_at(k) == codec.mask).flatten(1).any(-1).long() for k in range(64)
    )
    assert c.nfe == steps_with_masked.tolist() and a.idle_steps == c.idle_steps
    assert max(a.idle_steps) > 0
    assert not torch.equal(a.tokens, sample(model, req.replace(seed=12)).tokens)


@pytest.mark.parametrize("ell", [1, 2, 4])
def test_mean_idle_steps_match_closed_form(ell):
    model = tiny_text_model(ell=ell, seq_len=4)
    steps, n = 32, 512
    result = sample(model, SampleRequest(num_samples=n, steps=steps, seed=ell))
    idle = torch.tensor(result.idle_steps, dtype=torch.float64)
    alpha = 1 - time_grid(steps)  # linear schedule
    expected = float(((1 - (alpha[1:] - alpha[:-1])) ** (ell * 4)).sum())
    se = float(idle.std()) / math.sqrt(n)
    assert abs(float(idle.mean()) - expected) < 4 * se


def test_cancel_returns_partial_result():
    model = tiny_text_model()
    token = CancelToken()
    gen = iter_sample(model, SampleRequest(num_samples=2, steps=50, seed=0), cancel=token)
    try:
        while True:
            if next(gen).step == 7:
                token.cancel()
    except StopIteration as stop:
        result = stop.value
    assert result.cancelled and result.steps_done == 7
    assert bool((result.tokens == -1).any())
    assert torch.equal(result.tokens, result.trajectory.tokens_at(7))
    with pytest.raises(ValueError, match="0..7"):
        result.trajectory.state_at(8)


def test_branch_keeps_steps_up_to_k_then_diverges():
    model = tiny_image_model(ell=2)
    parent = sample(model, SampleRequest(num_samples=2, steps=16, seed=1))
    child = branch(model, parent.trajectory, 6, SampleRequest(num_samples=2, steps=16, seed=99))
    for k in range(7):
        assert torch.equal(child.trajectory.state_at(k), parent.trajectory.state_at(k))
    assert torch.equal(child.trajectory.idle[:6], parent.trajectory.idle[:6])
    assert not torch.equal(child.tokens, parent.tokens)
    same = branch(model, parent.trajectory, 16, SampleRequest(num_samples=2, steps=16, seed=3))
    assert torch.equal(same.tokens, parent.tokens)
    with pytest.raises(ValueError, match="steps must be 16"):
        branch(model, parent.trajectory, 3, SampleRequest(num_samples=2, steps=8))


def test_text_prefix_and_suffix_are_kept():
    model = tiny_text_model(seq_len=16)
    cond = text_condition(model.codec, 16, text_to_tokens("In the"), text_to_tokens("end."))
    result = sample(model, SampleRequest(num_samples=3, steps=8, seed=2, condition=cond, corrector=0.3))
    for row in result.tokens:
        text = bytes(row.tolist())
        assert text.startswith(b"In the") and text.endswith(b"end.")
    assert tokens_to_text(torch.tensor([72, 105, -1])) == "Hi\u2591"
    with pytest.raises(ValueError, match="do not fit in a sequence of 16"):
        text_condition(model.codec, 16, text_to_tokens("x" * 17))
    short = text_condition(model.codec, 16, text_to_tokens("ab"), text_to_tokens("yz"), end=10)
    kept = short.fixed.all(-1)
    assert kept.nonzero().flatten().tolist() == [0, 1, 8, 9]
    assert model.codec.decode(short.digits)[8:10].tolist() == list(b"yz")


def test_inpainting_and_regenerate_detail():
    model = tiny_image_model(num_classes=256, ell=4, size=4)
    codec = model.codec
    base = sample(model, SampleRequest(num_samples=1, steps=8, seed=0)).tokens[0]
    keep = torch.arange(16) < 8
    painted = sample(model, SampleRequest(steps=8, seed=1, condition=region_condition(codec, base, keep)))
    assert torch.equal(painted.tokens[0, :8], base[:8])
    detail = sample(
        model, SampleRequest(steps=8, seed=1, corrector=0.2, condition=high_digits_condition(codec, base, 2))
    )
    assert torch.equal(codec.encode(detail.tokens[0])[:, :2], codec.encode(base)[:, :2])
    assert not torch.equal(detail.tokens[0], base)
    with pytest.raises(ValueError, match="keep_digits must be in 1..3"):
        high_digits_condition(codec, base, 4)


def test_all_fixed_means_no_network_calls():
    model = tiny_text_model(seq_len=4)
    cond = text_condition(model.codec, 4, text_to_tokens("abcd"))
    result = sample(model, SampleRequest(steps=5, condition=cond))
    assert result.nfe == [0] and result.idle_steps == [5]
    assert bytes(result.tokens[0].tolist()) == b"abcd"


def test_top_p_keeps_the_token_that_crosses_p_and_top_k():
    codec = Codec(4, 1)
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])).view(1, 1, 4)
    y = torch.full((1, 1, 1), codec.mask)
    kept = tempered_log_probs(logits, y, codec, 1.0, top_p=0.6).exp()[0, 0]
    assert torch.allclose(kept, torch.tensor([0.625, 0.375, 0.0, 0.0]))
    kept = tempered_log_probs(logits, y, codec, 1.0, top_p=0.45).exp()[0, 0]
    assert torch.allclose(kept, torch.tensor([1.0, 0.0, 0.0, 0.0]))
    kept = tempered_log_probs(logits, y, codec, 1.0, top_k=3).exp()[0, 0]
    assert float(kept[3]) == 0.0 and float(kept.sum()) == pytest.approx(1.0)


def test_predictions_are_recorded_and_agree_with_visible_tokens():
    model = tiny_image_model(ell=2)
    result = sample(model, SampleRequest(num_samples=2, steps=10, seed=4, record_predictions=True))
    traj = result.trajectory
    for k in range(10):
        pred, tokens = traj.prediction_at(k), traj.tokens_at(k)
        decided = tokens >= 0
        assert torch.equal(pred[decided].long(), tokens[decided])
    assert torch.equal(traj.prediction_at(10).long(), result.tokens)


def test_trajectory_digit_record_does_not_grow_with_steps():
    model = tiny_text_model(seq_len=8)
    sizes = [sample(model, SampleRequest(steps=t)).trajectory.nbytes(per_step=False) for t in (8, 64, 512)]
    assert sizes[0] == sizes[1] == sizes[2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"top_p": 0.0}, "top_p"),
        ({"temperature": -1.0}, "temperature"),
        ({"reveal": "both"}, "reveal"),
        ({"corrector": 1.5}, "corrector"),
        ({"corrector_start": 0.0}, "corrector_start"),
        ({"corrector_start": 1.5}, "corrector_start"),
        ({"num_samples": 0}, "num_samples"),
    ],
)
def test_nonsense_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SampleRequest(**kwargs)


# -- exact idle skipping: the same process as revealing step by step ---------------------------


def _stepwise_reference(model, n, steps, gen, warp=1.0):
    """Today's sampler written plainly: every step, each masked digit revealed with probability r."""
    from engine.prime.filter import filtered_log_probs

    codec, schedule = model.codec, model.schedule
    times = time_grid(steps, warp)
    y = torch.full((n, model.config.seq_length, codec.ell), codec.mask)
    reveal_at = torch.zeros(y.shape, dtype=torch.long)
    for k in range(1, steps + 1):
        r = 1.0 if k == steps else schedule.reveal_probability(float(times[k - 1]), float(times[k]))
        newly = (y == codec.mask) & (torch.rand(y.shape, generator=gen) < r)
        with torch.no_grad():
            p = filtered_log_probs(model(y), y, codec).exp()  # (N, L, C)
        x = torch.multinomial(p.view(-1, p.shape[-1]), 1, generator=gen).view(y.shape[:2])
        y = torch.where(newly, codec.encode(x), y)
        reveal_at[newly] = k
    return codec.decode(y), reveal_at


def _chi2_two_sample(a: torch.Tensor, b: torch.Tensor, bins: int) -> float:
    """p-value of a chi-square two-sample test on integer outcomes 0..bins-1 (equal sample sizes)."""
    ca = torch.bincount(a.flatten(), minlength=bins).double()
    cb = torch.bincount(b.flatten(), minlength=bins).double()
    used = (ca + cb) > 0
    stat = float((((ca - cb) ** 2) / (ca + cb))[used].sum())
    df = int(used.sum()) - 1
    return float(torch.special.gammaincc(torch.tensor(df / 2.0), torch.tensor(stat / 2.0)))


def test_reveal_steps_follow_the_schedule_and_match_stepwise_sampling():
    model = tiny_image_model(num_classes=4, ell=2, size=1, d_model=8)  # one token, two digits
    steps, n = 6, 4000  # a warped grid: the reveal steps are far from uniform
    result = sample(model, SampleRequest(num_samples=n, steps=steps, seed=0, time_warp=2.0))
    ours = result.trajectory.reveal_step.long() - 1  # (N, 1, 2) steps 0..T-1
    # closed form: P(revealed at step k) = alpha(t_k) - alpha(t_{k-1}); chi-square goodness of fit
    alpha = model.schedule.alpha(time_grid(steps, 2.0))
    expected = (alpha[1:] - alpha[:-1]) * ours.numel()
    counts = torch.bincount(ours.flatten(), minlength=steps).double()
    stat = float(((counts - expected) ** 2 / expected).sum())
    assert float(torch.special.gammaincc(torch.tensor((steps - 1) / 2), torch.tensor(stat / 2))) > 1e-3
    # the same against the plain step-by-step sampler, for reveal steps and for the samples
    ref_tokens, ref_steps = _stepwise_reference(model, n, steps, torch.Generator().manual_seed(1), 2.0)
    assert _chi2_two_sample(ours, ref_steps - 1, steps) > 1e-3
    assert _chi2_two_sample(result.tokens, ref_tokens, 4) > 1e-3
    # and the idle steps against the closed form sum_k (1 - (alpha_k - alpha_{k-1}))^N
    idle = torch.tensor(result.idle_steps, dtype=torch.float64)
    closed = float(((1 - (alpha[1:] - alpha[:-1])) ** 2).sum())
    assert abs(float(idle.mean()) - closed) < 4 * float(idle.std()) / math.sqrt(n)


def test_joint_distribution_of_two_tokens_matches_stepwise_sampling():
    model = tiny_text_model(ell=1, seq_len=2)  # 256 x 256 outcomes: compare x1 * 4 + x2 // 64
    n, steps = 4000, 3
    tokens = sample(model, SampleRequest(num_samples=n, steps=steps, seed=3)).tokens
    ref, _ = _stepwise_reference(model, n, steps, torch.Generator().manual_seed(4))
    coarse = lambda t: (t[:, 0] // 64) * 4 + t[:, 1] // 64  # noqa: E731 - 16 joint bins
    assert _chi2_two_sample(coarse(tokens), coarse(ref), 16) > 1e-3
    assert _chi2_two_sample(tokens[:, 0] % 4, ref[:, 0] % 4, 4) > 1e-3


def test_idle_steps_cost_no_network_call_and_almost_no_time():
    import time

    model = tiny_image_model(num_classes=4, ell=2, size=1, d_model=8)  # two digits
    calls = []
    hook = model.register_forward_hook(lambda *a: calls.append(1))
    try:
        started = time.perf_counter()
        gen = iter_sample(model, SampleRequest(num_samples=1, steps=50_000, seed=0))
        snapshots = 0
        while True:
            try:
                next(gen)
                snapshots += 1
            except StopIteration as stop:
                result = stop.value
                break
        seconds = time.perf_counter() - started
    finally:
        hook.remove()
    assert snapshots == 50_000  # every step is still yielded and recorded
    assert len(calls) == result.nfe[0] == 50_000 - result.idle_steps[0] <= 2
    assert int(result.trajectory.idle.sum()) == result.idle_steps[0]
    assert seconds < 10.0  # stepping through 50,000 steps one by one takes minutes
