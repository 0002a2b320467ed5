"""The Prime method at large C (BPE vocabularies up to 65,536 tokens, ell up to ceil(log2 C)).

Exact enumeration of the valid bound at C > 256 with ell >= 3, the filter and the digit marginals
against a per-digit reference, sampling at C = 4,096 / 50,257 / 65,536 (tokens below C, consistent
with every revealed digit, with and without a permutation), and the float64 inverse-CDF draw
that a float32 running sum gets wrong.
"""

import functools
import math

import numpy as np
import pytest
import torch

from engine import ModelConfig, PrimeModel, SampleRequest, sample
from engine.bench.sample import pair_vocabulary
from engine.files.trajectory import load_trajectory, save_trajectory
from engine.prime import Codec, Schedule, consistent_mask, digit_log_marginals, paper_surrogate, valid_bound
from engine.prime.filter import digit_masses, filtered_log_probs, has_consistent_token, inconsistent_mask
from engine.sampling.step import ConsistentSets, draw_filtered, draw_tokens, inverse_cdf, tempered_log_probs
from engine.sampling.strategies import RevealPlan, reveal_cdf
from engine.sampling.trajectory import Trajectory
from engine.tokenizer import BpeTokenizer
from tests.engine.test_objectives import entropy, exact_objective


def _permutation(num_classes: int, seed: int) -> tuple[int, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randperm(num_classes, generator=g).tolist())


def _reference_consistent(y: torch.Tensor, codec: Codec) -> torch.Tensor:
    """Per-digit definition: token x fits y (K, ell) iff every visible digit equals x's digit. (K, C)."""
    table = codec.token_digits  # (C, ell) digits of every token id
    ok = torch.ones(y.shape[0], codec.num_classes, dtype=torch.bool)
    for j in range(codec.ell):
        ok &= (y[:, j : j + 1] == codec.mask) | (y[:, j : j + 1] == table[:, j])
    return ok


def _random_partial_tokens(codec: Codec, k: int, seed: int, invalid: bool = True) -> torch.Tensor:
    """(K, ell) partial tokens: digits of random tokens, about half masked; a few impossible ones."""
    g = torch.Generator().manual_seed(seed)
    y = codec.encode(torch.randint(0, codec.num_classes, (k,), generator=g))
    y[torch.rand(y.shape, generator=g) < 0.5] = codec.mask
    if invalid:  # any digit values, including codes >= C (when b**ell > C)
        y[: k // 4] = torch.randint(0, codec.base + 1, (k // 4, codec.ell), generator=g)
    return y


@functools.cache
def _vocabulary(size: int) -> BpeTokenizer:
    """A real byte-level BPE vocabulary of ``size`` entries (the bench's: bytes, then byte pairs)."""
    return pair_vocabulary(size)


def _tiny_text_model(num_classes: int, ell: int, permutation=None, seed: int = 0) -> PrimeModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        modality="text",
        tokenizer="bpe",
        vocabulary=_vocabulary(num_classes),
        num_classes=num_classes,
        ell=ell,
        seq_len=8,
        d_model=16,
        n_layers=1,
        n_heads=2,
        permutation=permutation,
    )
    return PrimeModel(cfg).eval()


# -- the bound, by exact enumeration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_classes", "ell", "support", "permuted"),
    [(300, 3, 40, False), (300, 3, 40, True), (300, 5, 12, False), (300, 9, 4, True)],
)
def test_valid_bound_equals_entropy_at_large_c(num_classes, ell, support, permuted):
    """C = 300 > 256 (b**ell > C: invalid codes exist), ell up to ceil(log2 C) = 9.

    The model is exact: its logits are log p_data, so the filter gives p(x | y_t) for L = 1, and the
    expectation over t and over every masking pattern (exact_objective sums them with their
    probabilities) of the valid bound is the data entropy. The paper surrogate falls below it.
    """
    codec = Codec(num_classes, ell, _permutation(num_classes, 1) if permuted else None)
    assert codec.base**ell > num_classes
    g = torch.Generator().manual_seed(10 * ell + support)
    p = torch.zeros(num_classes, dtype=torch.float64)
    tokens = torch.randperm(num_classes, generator=g)[:support]
    p[tokens] = torch.rand(support, generator=g, dtype=torch.float64) + 0.05
    p /= p.sum()
    h = entropy(p)
    assert exact_objective(valid_bound, p, codec) == pytest.approx(h, rel=1e-5)
    surrogate = exact_objective(paper_surrogate, p, codec)
    assert surrogate < h - 1e-3  # the digits of a random distribution are dependent


def test_objective_matches_per_digit_logsumexp_values_and_gradients():
    """The prefix-tree digit marginals give the per-digit definition's loss and gradient."""
    codec = Codec(4096, 8, _permutation(4096, 2))  # base 3: 6561 codes, 2465 of them invalid
    schedule = Schedule("linear")
    g = torch.Generator().manual_seed(3)
    x0 = torch.randint(0, 4096, (3, 5), generator=g)
    y0 = codec.encode(x0)
    y_t = torch.where(torch.rand(y0.shape, generator=g) < 0.6, torch.full_like(y0, codec.mask), y0)
    t = torch.tensor([0.3, 0.7, 1.0])
    logits = (3 * torch.randn(3, 5, 4096, generator=g)).requires_grad_()
    got = valid_bound(logits, y_t, x0, t, codec, schedule)
    (grad_got,) = torch.autograd.grad(got.sum(), logits)

    ref_logits = logits.detach().clone().requires_grad_()
    logp = filtered_log_probs(ref_logits, y_t, codec)
    nll = torch.zeros(3)
    for j in range(codec.ell):
        hit = codec.token_digits[:, j] == y0[..., j : j + 1]  # (B, L, C)
        term = -torch.logsumexp(logp.masked_fill(~hit, float("-inf")), dim=-1)
        nll = nll + torch.where(y_t[..., j] == codec.mask, term, torch.zeros_like(term)).sum(-1)
    ref = schedule.weight(t) * nll
    (grad_ref,) = torch.autograd.grad(ref.sum(), ref_logits)
    assert torch.allclose(got, ref, rtol=1e-4)
    assert torch.isfinite(grad_got).all()
    assert torch.allclose(grad_got, grad_ref, atol=1e-6)


def test_objective_keeps_tiny_digit_masses_finite_and_exact():
    """A truth the model gives e^-300 has a loss of ~300 nats, not inf (no float32 underflow)."""
    codec = Codec(300, 3)
    schedule = Schedule("linear")
    x0 = torch.tensor([[7]])
    y0 = codec.encode(x0)
    y_t = torch.full_like(y0, codec.mask)  # all three digits masked
    logits = torch.zeros(1, 1, 300)
    same_digit = (codec.token_digits == y0[0, 0]).any(-1)  # tokens sharing a digit with x0
    logits[0, 0, same_digit] = -300.0
    logits.requires_grad_()
    value = valid_bound(logits, y_t, x0, torch.ones(1), codec, schedule)
    (grad,) = torch.autograd.grad(value.sum(), logits)
    others = int((~same_digit).sum())
    per_digit = []
    for j in range(3):  # exact: log of (tokens with digit j = y0_j) mass, all at -300
        count = int((codec.token_digits[:, j] == y0[0, 0, j]).sum())
        per_digit.append(-(-300.0 + math.log(count) - math.log(others)))
    assert float(value.detach()) == pytest.approx(sum(per_digit), rel=1e-5)
    assert bool(torch.isfinite(grad).all())


# -- filter and marginals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_classes", "ell"), [(300, 3), (4096, 2), (4096, 5), (4096, 12), (50257, 4), (50257, 16), (65536, 16)]
)
@pytest.mark.parametrize("permuted", [False, True])
def test_consistent_mask_matches_per_digit_definition(num_classes, ell, permuted):
    codec = Codec(num_classes, ell, _permutation(num_classes, ell) if permuted else None)
    y = _random_partial_tokens(codec, 24, seed=ell)
    ref = _reference_consistent(y, codec)
    got = consistent_mask(y.view(2, 12, ell), codec)
    assert got.shape == (2, 12, num_classes)
    assert torch.equal(got.view(24, -1), ref)
    assert torch.equal(inconsistent_mask(y, codec), ~ref)
    assert torch.equal(has_consistent_token(y, codec), ref.any(-1))
    if (codec.base + 1) ** ell * num_classes <= 1 << 24:  # the sampler's lookup table
        assert torch.equal(ConsistentSets(codec)(y), ref)


@pytest.mark.parametrize(("num_classes", "ell"), [(300, 9), (4096, 5), (50257, 2), (50257, 16)])
@pytest.mark.parametrize("permuted", [False, True])
def test_digit_marginals_match_per_digit_sums(num_classes, ell, permuted):
    codec = Codec(num_classes, ell, _permutation(num_classes, 7) if permuted else None)
    y = _random_partial_tokens(codec, 6, seed=1, invalid=False)
    logits = 4 * torch.randn(6, num_classes, generator=torch.Generator().manual_seed(0))
    logp = filtered_log_probs(logits, y, codec)  # (6, C)
    p = logp.double().exp()
    masses = digit_masses(logp, codec)  # (6, ell, b)
    assert masses.shape == (6, ell, codec.base)
    for j in range(ell):
        ref = torch.zeros(6, codec.base, dtype=torch.float64).index_add_(1, codec.token_digits[:, j], p)
        assert torch.allclose(masses[:, j].double(), ref, atol=1e-6)
        assert bool((masses[:, j][ref == 0] == 0).all())  # impossible values stay exactly 0
    log_marg = digit_log_marginals(logp.view(2, 3, -1), codec)
    assert torch.equal(log_marg.view(6, ell, -1), masses.log())


# -- sampling at large C ---------------------------------------------------------------------------


def _check_run(model: PrimeModel, request: SampleRequest) -> None:
    codec = model.codec
    result = sample(model, request)
    c = codec.num_classes
    assert result.tokens.shape == (request.num_samples, 8)
    assert int(result.tokens.min()) >= 0 and int(result.tokens.max()) < c
    traj = result.trajectory
    final = traj.state_at(traj.steps)
    assert torch.equal(codec.encode(result.tokens), final)  # the digits of real tokens
    for k in range(traj.steps + 1):  # every revealed digit already is the final token's digit
        state = traj.state_at(k)
        visible = state != codec.mask
        assert torch.equal(state[visible], final[visible])
        assert bool(has_consistent_token(state, codec).all())


@pytest.mark.parametrize(("num_classes", "ell"), [(4096, 1), (4096, 8), (4096, 16), (50257, 2), (50257, 16)])
@pytest.mark.parametrize("permuted", [False, True])
def test_sampled_tokens_below_c_and_consistent(num_classes, ell, permuted):
    """Planned hot path; ell = 8, 16 at C = 4,096 and ell = 2, 16 at C = 50,257 have b**ell > C."""
    model = _tiny_text_model(num_classes, ell, list(_permutation(num_classes, 3)) if permuted else None)
    _check_run(model, SampleRequest(num_samples=3, steps=16, seed=ell, temperature=1.5))


@pytest.mark.parametrize(
    "options",
    [
        {"reveal": "marginal", "record_predictions": True},
        {"strategy": "confidence", "top_p": 0.9},
        {"corrector": 0.0, "cache": False, "top_k": 50},
    ],
)
def test_general_loop_at_large_c(options):
    model = _tiny_text_model(50257, 8, list(_permutation(50257, 4)))  # base 4: 65,536 codes
    _check_run(model, SampleRequest(num_samples=2, steps=12, seed=1, **options))


def test_same_seed_same_tokens_at_large_c():
    model = _tiny_text_model(50257, 4)
    a = sample(model, SampleRequest(num_samples=2, steps=10, seed=9)).tokens
    b = sample(model, SampleRequest(num_samples=2, steps=10, seed=9)).tokens
    c = sample(model, SampleRequest(num_samples=2, steps=10, seed=10)).tokens
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("ell", [1, 16])
def test_trajectory_stores_c_65536(ell, tmp_path):
    """Tokens, digits and predictions up to 65,535 survive the record, its tensors and its file."""
    model = _tiny_text_model(65536, ell)
    result = sample(model, SampleRequest(num_samples=2, steps=6, seed=2, record_predictions=True))
    traj = result.trajectory
    assert int(traj.predictions.max()) < 65536 and traj.predictions.dtype == torch.int32
    assert torch.equal(traj.tokens_at(traj.steps), result.tokens)
    save_trajectory(tmp_path / "t.safetensors", traj, {"seed": 2})
    loaded, _ = load_trajectory(tmp_path / "t.safetensors")
    copy = Trajectory.from_tensors(*traj.to_tensors())
    assert torch.equal(loaded.tokens_at(traj.steps), result.tokens)
    for k in range(traj.steps + 1):
        assert torch.equal(copy.state_at(k), traj.state_at(k))
        if k < traj.steps:
            assert torch.equal(copy.prediction_at(k), traj.prediction_at(k))
    # the largest token and its digits are stored exactly (no int16 wrap-around)
    codec = model.codec
    top = torch.full((1, 8), 65535)
    empty = torch.full((1, 8, ell), codec.mask)
    record = Trajectory(codec, traj.times, empty, torch.zeros(1, 8, ell, dtype=torch.bool), True)
    digits = torch.arange(8 * ell)
    record.record_reveals(1, digits, codec.encode(top).view(-1), torch.ones(1), torch.tensor([8 * ell]), top)
    assert torch.equal(record.tokens_at(1), top)
    assert int(record.prediction_at(0).max()) == 65535


# -- the float64 inverse-CDF draw ------------------------------------------------------------------

BULK, C_GPT2 = 10257, 50257


def _tail_distribution() -> torch.Tensor:
    """C = 50,257: 10,257 likely classes with 0.999 of the mass, then 40,000 classes of 2.5e-8 each.

    Past the likely classes a float32 running sum is near 1, where it moves in steps of 6e-8, so
    adding 2.5e-8 rounds to nothing: a float32 cumsum gives the whole 1e-3 tail zero mass.
    """
    g = torch.Generator().manual_seed(0)
    p = torch.full((C_GPT2,), 2.5e-8, dtype=torch.float64)
    bulk = torch.rand(BULK, generator=g, dtype=torch.float64) + 0.5
    p[:BULK] = 0.999 * bulk / bulk.sum()
    p[BULK] = 1e-7  # one class at ~1e-7 right after the bulk
    return p / p.sum()


def test_float32_running_sum_loses_the_tail():
    """The premise of the next test: a float32 running sum (a GPU scan's, or numpy's) drops the tail.

    (torch's CPU cumsum happens to accumulate float32 in double; its GPU scan does not.)
    """
    p = _tail_distribution()
    cdf32 = np.cumsum(p.numpy().astype(np.float32))  # float32 accumulator
    assert float(cdf32[-1] - cdf32[BULK]) < 1e-4  # the true tail mass is 1e-3


def test_inverse_cdf_draws_the_tail_with_its_probability():
    p = _tail_distribution()
    logits = p.log().float().view(1, -1)  # the model's float32 logits
    g = torch.Generator().manual_seed(1)
    n = 80_000
    draws = torch.cat(
        [
            inverse_cdf(logits, torch.rand(1, 10_000, generator=g, dtype=torch.float64))
            for _ in range(n // 10_000)
        ],
        dim=1,
    ).view(-1)
    assert int(draws.min()) >= 0 and int(draws.max()) < C_GPT2
    tail_mass = float(p[BULK + 1 :].sum())  # ~1e-3: 80 expected draws
    hits = int((draws > BULK).sum())
    mean, sd = n * tail_mass, math.sqrt(n * tail_mass * (1 - tail_mass))
    assert abs(hits - mean) < 5 * sd, (hits, mean)  # a float32 cumsum gives ~0
    # chi-square over 16 bins of the likely classes plus the tail
    edges = torch.linspace(0, BULK + 1, 17).long()
    expected = torch.tensor(
        [float(p[a:b].sum()) for a, b in zip(edges[:-1], edges[1:], strict=True)] + [tail_mass]
    )
    observed = torch.tensor(
        [int(((draws >= a) & (draws < b)).sum()) for a, b in zip(edges[:-1], edges[1:], strict=True)] + [hits]
    )
    chi2 = float(((observed - n * expected) ** 2 / (n * expected)).sum())
    assert chi2 < 50.0  # 16 degrees of freedom: P(chi2 > 50) ~ 2e-5


def test_inverse_cdf_hits_a_1e7_class_exactly_where_its_mass_lies():
    """The uniforms that map to the ~1e-7 class are exactly its float64 interval of the CDF."""
    p = _tail_distribution()
    logits = p.log().float().view(1, -1)
    w = torch.softmax(logits.double(), -1)[0]  # the float32 logits' distribution, in float64
    cdf = w.cumsum(0)
    low, high = float(cdf[BULK - 1]), float(cdf[BULK])  # class BULK: mass ~1e-7
    inside = torch.tensor([[low + 0.1 * (high - low), low + 0.9 * (high - low)]], dtype=torch.float64)
    outside = torch.tensor([[low - 0.1 * (high - low), high + 0.1 * (high - low)]], dtype=torch.float64)
    assert inverse_cdf(logits, inside).tolist() == [[BULK, BULK]]
    assert inverse_cdf(logits, outside).tolist() == [[BULK - 1, BULK + 1]]
    # every tail class of mass 2.5e-8 (under half a float32 step near 1) owns its own interval
    tail = torch.arange(BULK + 1, BULK + 4001)
    mid = ((cdf[tail - 1] + cdf[tail]) / 2 / cdf[-1]).view(1, -1)
    assert torch.equal(inverse_cdf(logits, mid).view(-1), tail)


@pytest.mark.parametrize("num_classes", [300, 4096, 50257])
def test_inverse_cdf_equals_float64_reference_and_skips_excluded_classes(num_classes):
    g = torch.Generator().manual_seed(num_classes)
    logits = 3 * torch.randn(32, num_classes, generator=g)
    logits[torch.rand(logits.shape, generator=g) < 0.4] = float("-inf")
    u = torch.rand(32, 40, generator=g, dtype=torch.float64)
    u[0, :3] = torch.tensor([0.0, 1.0 - 2**-53, 0.5])  # the ends of [0, 1)
    got = inverse_cdf(logits, u)
    cdf = torch.softmax(logits.double(), -1).cumsum(-1)
    ref = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp(max=num_classes - 1)
    assert torch.isfinite(logits.gather(1, got)).all()  # never an excluded class
    assert float((got == ref).double().mean()) > 0.999
    assert torch.equal(inverse_cdf(logits, u[:, 0]), got[:, 0])


@pytest.mark.parametrize(("num_classes", "ell"), [(4096, 8), (50257, 2), (50257, 16), (65536, 16)])
@pytest.mark.parametrize("permuted", [False, True])
def test_drawn_tokens_are_consistent_with_the_visible_digits(num_classes, ell, permuted):
    """The sampler's draw (filter + inverse CDF) only ever returns tokens in V(y), below C."""
    codec = Codec(num_classes, ell, _permutation(num_classes, 8) if permuted else None)
    y = _random_partial_tokens(codec, 48, seed=9, invalid=False)
    g = torch.Generator().manual_seed(10)
    logits = 4 * torch.randn(48, num_classes, generator=g)
    for temperature in (1.0, 2.0):
        x = draw_filtered(
            logits, y, torch.rand(48, generator=g, dtype=torch.float64), ConsistentSets(codec), temperature
        )
        assert int(x.min()) >= 0 and int(x.max()) < num_classes
        assert bool(_reference_consistent(y, codec).gather(1, x.view(-1, 1)).all())


def test_temperature_then_float64_same_draw_on_both_paths():
    """The hot path (draw_filtered) and tempered_log_probs + draw_tokens draw the same tokens."""
    codec = Codec(50257, 4)
    y = _random_partial_tokens(codec, 64, seed=5, invalid=False)
    g = torch.Generator().manual_seed(6)
    logits = 2 * torch.randn(64, 50257, generator=g)
    u = torch.rand(64, generator=g, dtype=torch.float64)
    for temperature in (1.0, 0.7, 1.6):
        fast = draw_filtered(logits, y, u, ConsistentSets(codec), temperature)
        slow = draw_tokens(tempered_log_probs(logits, y, codec, temperature), u)
        assert torch.equal(fast, slow)
        assert bool(_reference_consistent(y, codec).gather(1, fast.view(-1, 1)).all())


def test_ancestral_plan_uniforms_are_float64():
    """float32 uniforms come in steps of 6e-8: too coarse for classes of probability ~1e-7."""
    candidates = torch.ones(2, 8, 2, dtype=torch.bool)
    alpha = Schedule("linear").alpha(torch.linspace(1, 0, 5, dtype=torch.float64))
    plan = RevealPlan(
        "ancestral", candidates, reveal_cdf(alpha, 0), 0, torch.Generator().manual_seed(0), True
    )
    u_tok, u_dig = plan.uniforms_at(plan.active_steps()[0])
    assert u_tok.dtype == torch.float64 and u_dig is not None and u_dig.dtype == torch.float64


def test_pair_vocabulary_is_a_lossless_bpe_vocabulary_of_the_asked_size():
    tok = pair_vocabulary(50257)
    assert tok.vocab_size == 50257
    text = (
        "Pair vocabularies still round-trip any bytes: \u00e9\u4e2d \xff".encode("utf-8", "surrogatepass")
        + b"\xff"
    )
    ids = tok.encode(text)
    assert int(ids.max()) < 50257 and tok.decode(ids) == text
    assert len(ids) < len(text)  # the byte-pair merges are used


def test_inverse_cdf_refuses_a_row_without_mass():
    for c in (300, 50257):
        logits = torch.zeros(2, c)
        logits[1] = float("-inf")
        with pytest.raises(ValueError, match="no class of positive probability"):
            inverse_cdf(logits, torch.rand(2, dtype=torch.float64))
