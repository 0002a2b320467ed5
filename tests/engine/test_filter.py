import itertools

import pytest
import torch

from engine.prime import Codec, consistent_mask, digit_log_marginals, filtered_log_probs


def brute_consistent(y, codec):
    out = torch.zeros(codec.num_classes, dtype=torch.bool)
    for x in range(codec.num_classes):
        d = codec.encode(torch.tensor(x))
        out[x] = all(int(y[j]) == codec.mask or int(y[j]) == int(d[j]) for j in range(codec.ell))
    return out


def test_mask_matches_brute_force_for_every_partial_token():
    codec = Codec(10, 2)  # base 4: some codes never valid
    for y in itertools.product(range(codec.base + 1), repeat=2):
        y_t = torch.tensor(y).view(1, 1, 2)
        assert torch.equal(consistent_mask(y_t, codec)[0, 0], brute_consistent(torch.tensor(y), codec))


def test_fully_visible_token_has_one_value_and_filtered_probs_normalise():
    codec = Codec(256, 4)
    x = torch.randint(0, 256, (3, 5))
    y = codec.encode(x)
    y[0, 0, 2:] = codec.mask  # partly masked token
    logits = torch.randn(3, 5, 256)
    logp = filtered_log_probs(logits, y, codec)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(3, 5), atol=1e-5)
    visible = (y != codec.mask).all(-1)
    assert bool((logp[visible].argmax(-1) == x[visible]).all())
    assert torch.allclose(logp[visible].exp().max(-1).values, torch.ones(int(visible.sum())))
    assert int(torch.isfinite(logp[0, 0]).sum()) == 16  # two masked base-4 digits


def test_digit_marginals_sum_over_consistent_tokens():
    codec = Codec(10, 2)
    y = torch.tensor([[[codec.mask, codec.mask], [2, codec.mask]]])
    logp = filtered_log_probs(torch.randn(1, 2, 10, generator=torch.Generator().manual_seed(0)), y, codec)
    marg = digit_log_marginals(logp, codec).exp()  # (1, 2, 2, 4)
    assert torch.allclose(marg.sum(-1), torch.ones(1, 2, 2), atol=1e-5)
    p = logp.exp()[0, 0]
    expected_high = torch.tensor([p[codec.encode(torch.arange(10))[:, 0] == v].sum() for v in range(4)])
    assert torch.allclose(marg[0, 0, 0], expected_high, atol=1e-6)
    assert float(marg[0, 1, 0, 2]) == pytest.approx(1.0, abs=1e-6)  # visible digit (float32 sum)
    assert float(marg[0, 0, 0, 3]) == 0.0  # high digit 3 would be codes 12..15 >= C
