import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import smallest_base
from engine.prime import Codec


@pytest.mark.parametrize(("ell", "base"), [(1, 256), (2, 16), (4, 4), (8, 2)])
def test_base_for_pixels(ell, base):
    assert Codec(256, ell).base == base


@given(st.integers(2, 5000), st.integers(1, 12))
def test_base_is_smallest_integer(num_classes, ell):
    b = smallest_base(num_classes, ell)
    assert b**ell >= num_classes
    assert b == 2 or (b - 1) ** ell < num_classes


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 700), st.integers(1, 6), st.data())
def test_round_trip_and_digit_order(num_classes, ell, data):
    codec = Codec(num_classes, ell)
    x = torch.tensor(data.draw(st.lists(st.integers(0, num_classes - 1), min_size=1, max_size=20)))
    y = codec.encode(x)
    assert y.shape == (*x.shape, ell)
    assert int(y.min()) >= 0 and int(y.max()) < codec.base
    assert torch.equal(codec.decode(y), x)
    # most significant first: x = sum_j y_j * b^(ell - j)
    recon = sum(y[:, j] * codec.base ** (ell - 1 - j) for j in range(ell))
    assert torch.equal(recon, x)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 300), st.integers(1, 4), st.randoms(use_true_random=False))
def test_permutation_round_trip(num_classes, ell, rnd):
    perm = list(range(num_classes))
    rnd.shuffle(perm)
    codec = Codec(num_classes, ell, tuple(perm))
    x = torch.arange(num_classes)
    assert torch.equal(codec.decode(codec.encode(x)), x)
    assert torch.equal(codec.encode(x), Codec(num_classes, ell).encode(torch.tensor(perm)))


def test_decode_marks_masked_and_out_of_range_codes():
    codec = Codec(17, 2)  # base 5: codes 17..24 never occur
    assert codec.base == 5 and codec.mask == 5
    y = torch.tensor([[3, 1], [5, 1], [4, 4], [0, 5]])
    assert codec.decode(y).tolist() == [16, -1, -1, -1]


def test_encode_rejects_out_of_range_tokens():
    with pytest.raises(ValueError, match="0..16"):
        Codec(17, 2).encode(torch.tensor([17]))


def test_value_range_of_partial_tokens():
    codec = Codec(256, 2)
    low, high = codec.value_range(torch.tensor([[3, 16], [16, 16], [3, 4]]))
    assert low.tolist() == [48, 0, 52] and high.tolist() == [63, 255, 52]
