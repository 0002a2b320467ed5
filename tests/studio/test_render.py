import numpy as np
import pytest
import torch
from conftest import image_config, text_config

import engine
from studio import render
from studio.render import Renderer


def random_state(cfg, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, cfg.num_classes, (n, cfg.seq_length), generator=g)
    digits = engine.Codec.from_config(cfg).encode(tokens)  # (N, L, ell)
    masked = torch.rand(digits.shape, generator=g) < 0.5
    return tokens, torch.where(masked, cfg.base, digits)


@pytest.mark.parametrize("ell", [1, 2, 4])
def test_pattern_table_matches_the_engine_filter(ell):
    cfg = image_config(num_classes=16, ell=ell, d_model=16)
    _, state = random_state(cfg)
    mean, count, frac = Renderer(cfg).token_stats(state)
    allowed = engine.prime.filter.consistent_mask(state, engine.Codec.from_config(cfg))  # (N, L, C)
    assert np.array_equal(count, allowed.sum(-1).numpy())
    values = torch.arange(cfg.num_classes).double()
    expected = (allowed.double() * values).sum(-1) / allowed.sum(-1)
    assert np.allclose(mean, expected.numpy(), atol=1e-4)
    assert np.array_equal(frac, (state == cfg.base).float().mean(-1).numpy())


def test_pattern_table_with_index_shuffling():
    perm = tuple(torch.randperm(16, generator=torch.Generator().manual_seed(3)).tolist())
    cfg = image_config(num_classes=16, ell=2, permutation=perm)
    _, state = random_state(cfg)
    _, count, _ = Renderer(cfg).token_stats(state)
    allowed = engine.prime.filter.consistent_mask(state, engine.Codec.from_config(cfg))
    assert np.array_equal(count, allowed.sum(-1).numpy())


def test_visible_pixels_show_their_value_and_states_are_distinct():
    cfg = image_config(num_classes=256, ell=2, height=2, width=3, channels=1, d_model=16)
    tokens = torch.tensor([[0, 255, 100, 7, 8, 9]])
    digits = engine.Codec.from_config(cfg).encode(tokens)
    r = Renderer(cfg)
    clean = r.image_arrays(digits)
    assert np.array_equal(clean[..., 0], engine.tokens_to_images(tokens, cfg)[..., 0])
    partial = digits.clone()
    partial[0, 3, 1] = cfg.base  # token 3: low digit masked
    partial[0, 4, :] = cfg.base  # token 4: masked
    img = r.image_arrays(partial)[0].reshape(-1, 3)
    grey = lambda px: px[0] == px[1] == px[2]  # noqa: E731
    assert grey(img[0]) and grey(img[3 - 1])
    assert not grey(img[3]) and not grey(img[4])  # tinted
    assert np.array_equal(img[4], np.clip(render.TINT + 0.5, 0, 255).astype(np.uint8))
    assert not np.array_equal(img[3], img[4])
    states = r.image_arrays(partial, "map")[0].reshape(-1, 3)
    assert len({tuple(states[0]), tuple(states[3]), tuple(states[4])}) == 3


def test_prediction_mode_shows_the_prediction():
    cfg = image_config(num_classes=16, ell=2)
    tokens, state = random_state(cfg, n=2)
    img = Renderer(cfg).image_arrays(state, "prediction", tokens)
    assert np.array_equal(img[..., 0], engine.tokens_to_images(tokens, cfg)[..., 0])


def test_grid_and_inverse_position():
    images = np.arange(5 * 2 * 3 * 3, dtype=np.uint8).reshape(5, 2, 3, 3)
    g = render.grid(images)
    assert g.shape == (2 * 3 - 1, 3 * 4 - 1, 3)
    for n in range(5):
        r, c = divmod(n, 3)
        assert np.array_equal(g[r * 3 : r * 3 + 2, c * 4 : c * 4 + 3], images[n])
        assert render.grid_position(5, 2, 3, c * 4 + 2, r * 3 + 1) == (n, 1, 2)
    assert render.grid_position(5, 2, 3, 3, 0) is None  # gap
    assert render.grid_position(5, 2, 3, 8, 4) is None  # no 6th sample


def test_qimage_round_trip():
    rgb = np.random.default_rng(0).integers(0, 255, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(render.qimage_to_array(render.to_qimage(rgb)), rgb)


def test_hover_info_uses_probabilities():
    cfg = image_config(num_classes=16, ell=2)  # base 4
    r = Renderer(cfg)
    probs = torch.zeros(16)
    probs[9], probs[10], probs[3] = 0.5, 0.2, 0.3  # 3 is not allowed below
    info = r.token_info(torch.tensor([2, 4]), 0, probs)  # high digit 2: values 8..11
    assert (info.state, info.count, info.low, info.high) == ("partial", 4, 8, 11)
    assert info.likely[0][0] == 9 and info.likely[1][0] == 10
    assert abs(info.likely[0][1] - 0.5 / 0.7) < 1e-6
    assert info.digits_text() == "2 m"


def test_text_segments_and_html():
    cfg = text_config(ell=2)
    codec = engine.Codec.from_config(cfg)
    digits = codec.encode(torch.tensor(list(b"Hi<")))
    digits[1, 1] = codec.mask  # partial 'i'
    digits = torch.cat([digits, torch.full((1, 2), codec.mask)])
    segs = Renderer(cfg).text_segments(digits)
    assert [s[1] for s in segs] == [render.VISIBLE, render.PARTIAL, render.VISIBLE, render.MASKED]
    assert segs[0][0] == "H" and segs[3][0] == "\u2591"
    html = Renderer(cfg).text_html(digits)
    assert "&lt;" in html and "H</span>" in html
