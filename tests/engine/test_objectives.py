"""Exact enumeration on tiny cases (docs/METHOD.md §4): with the exact posterior as the model, the valid
bound equals the data entropy, and the paper surrogate falls below it when digits are dependent."""

import itertools
import math

import pytest
import torch

from engine.prime import Codec, Schedule, add_noise, paper_surrogate, stratified_times, valid_bound


def exact_objective(objective, p_data, codec):
    """Integral over t in [0, 1] of E_{x ~ p_data, y_t} objective, linear schedule, one token (L = 1).

    With w(t) = 1/t and a mask pattern of m digits, the t-integral of w(t) t^m (1-t)^(ell-m) is
    B(m, ell - m + 1) = (m-1)! (ell-m)! / ell!; objective(t = 1) gives the bracket since w(1) = 1.
    """
    schedule = Schedule("linear")
    logits = torch.log(p_data).view(1, 1, -1)  # the exact posterior: p_data filtered to V(y_t)
    total = 0.0
    for x in range(codec.num_classes):
        if p_data[x] == 0:
            continue
        y0 = codec.encode(torch.tensor([[x]]))  # (1, 1, ell)
        for pattern in itertools.product([False, True], repeat=codec.ell):
            m = sum(pattern)
            if m == 0:
                continue
            y_t = torch.where(torch.tensor(pattern).view(1, 1, -1), torch.full_like(y0, codec.mask), y0)
            bracket = float(objective(logits, y_t, torch.tensor([[x]]), torch.ones(1), codec, schedule))
            beta = math.factorial(m - 1) * math.factorial(codec.ell - m) / math.factorial(codec.ell)
            total += float(p_data[x]) * bracket * beta
    return total


def entropy(p):
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def test_two_always_equal_bits():
    codec = Codec(4, 2)  # base 2: x in {00, 11}
    p = torch.tensor([0.5, 0.0, 0.0, 0.5], dtype=torch.float64)
    assert exact_objective(valid_bound, p, codec) == pytest.approx(math.log(2), rel=1e-6)
    assert exact_objective(paper_surrogate, p, codec) == pytest.approx(0.5 * math.log(2), rel=1e-6)


@pytest.mark.parametrize(("num_classes", "ell"), [(6, 1), (6, 2), (10, 2), (27, 3), (16, 4)])
def test_valid_bound_equals_entropy_for_any_distribution(num_classes, ell):
    g = torch.Generator().manual_seed(num_classes * 10 + ell)
    p = torch.rand(num_classes, generator=g, dtype=torch.float64) ** 3
    p[0] = 0.0
    p /= p.sum()
    codec = Codec(num_classes, ell)
    h = entropy(p)
    assert exact_objective(valid_bound, p, codec) == pytest.approx(h, rel=1e-6)
    surrogate = exact_objective(paper_surrogate, p, codec)
    assert surrogate <= h + 1e-9
    if ell > 1:
        assert surrogate < h - 1e-3  # digits of a random distribution are dependent


@pytest.mark.parametrize("name", ["linear", "cosine", "polynomial"])
def test_monte_carlo_bound_matches_entropy(name):
    """The noising process + stratified t estimate the same bound for any schedule."""
    codec = Codec(4, 2)
    schedule = Schedule(name, 3.0)
    p = torch.tensor([0.5, 0.0, 0.0, 0.5])
    g = torch.Generator().manual_seed(0)
    n = 20000
    x0 = torch.multinomial(p, n, replacement=True, generator=g).view(n, 1)
    t = stratified_times(n, g)
    y_t = add_noise(codec.encode(x0), t, schedule, codec, g)
    logits = torch.log(p).view(1, 1, -1).expand(n, 1, 4)
    values = valid_bound(logits, y_t, x0, t, codec, schedule)
    mean, se = float(values.mean()), float(values.std() / math.sqrt(n))
    assert abs(mean - math.log(2)) < 4 * se + 1e-3
