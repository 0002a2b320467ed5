import numpy as np
import pytest

from engine.bench.metrics import frechet_distance, steps_for_nfe, text_quality


def test_steps_for_nfe_matches_the_idle_closed_form():
    # with many sub-tokens almost no step is idle, so T = NFE
    assert steps_for_nfe(16, 4096) == 16
    # with few sub-tokens MDM needs more steps than the NFE budget
    steps = steps_for_nfe(32, 64)
    assert steps > 32
    expected = lambda t: t - t * (1 - 1 / t) ** 64  # noqa: E731
    assert expected(steps) >= 31.5 > expected(steps - 1)
    # N sub-tokens allow at most N network calls (each call follows a change)
    with pytest.raises(ValueError, match="at most 64"):
        steps_for_nfe(64, 64)


def test_frechet_distance_is_zero_for_equal_sets_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 1.0) == pytest.approx(4.0, rel=1e-6)
    b = rng.normal(size=(500, 4)) * 2
    assert frechet_distance(a, b) > frechet_distance(a, rng.normal(size=(500, 4)))


def test_text_quality_counts_words_and_inner_lines():
    vocab = {"and", "god", "said", "let", "there", "be", "light"}
    passages = ["cut off\nAnd God said, Let there be light.\nAnd Gxd said be\ntail", "xq light"]
    q = text_quality(passages, vocab)
    assert q["words"] == 16
    assert q["in_vocabulary_share"] == pytest.approx(11 / 16)
    assert q["lines"] == 2 and q["well_formed_line_share"] == pytest.approx(0.5)
