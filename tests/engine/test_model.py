import pytest
import torch

from engine import ModelConfig, PrimeModel
from engine.prime import filtered_log_probs

from ._tiny import tiny_image_model, tiny_text_model


def test_logits_shape_and_filter_for_images_and_text():
    for model in (tiny_image_model(ell=2, channels=3), tiny_text_model(ell=4)):
        cfg, codec = model.config, model.codec
        y = torch.full((2, cfg.seq_length, cfg.ell), codec.mask)
        x = torch.randint(0, cfg.num_classes, (2, cfg.seq_length))
        y[:, :3] = codec.encode(x[:, :3])
        logits = model(y)
        assert logits.shape == (2, cfg.seq_length, cfg.num_classes)
        logp = filtered_log_probs(logits, y, codec)
        assert torch.equal(logp[:, :3].argmax(-1), x[:, :3])


def test_partial_token_embedding_sees_each_digit():
    model = tiny_text_model(ell=2)
    codec = model.codec
    a = torch.full((1, 16, 2), codec.mask)
    b = a.clone()
    b[0, 5, 1] = 3
    assert not torch.allclose(model(a), model(b))


def test_image_positions_are_two_dimensional():
    model = tiny_image_model(size=4, channels=3)
    pos = model.pos()
    assert pos.shape == (4 * 4 * 3, model.config.d_model)
    # token (row, col, ch) = row + col + channel vectors
    idx = (2 * 4 + 1) * 3 + 2
    expected = model.pos.row[2, 0, 0] + model.pos.col[0, 1, 0] + model.pos.chan[0, 0, 2]
    assert torch.allclose(pos[idx], expected)


def test_bad_configs_and_inputs_are_named():
    with pytest.raises(ValueError, match="d_model=30 must be a positive multiple of ell=4"):
        ModelConfig(modality="text", num_classes=256, ell=4, seq_len=8, d_model=30, n_heads=2)
    with pytest.raises(ValueError, match="num_classes"):
        ModelConfig(modality="image", num_classes=1, height=2, width=2, channels=1)
    with pytest.raises(ValueError, match="unknown ModelConfig keys: colour"):
        ModelConfig.from_dict({"modality": "image", "num_classes": 4, "colour": 1})
    with pytest.raises(ValueError, match="expected digits of shape"):
        tiny_text_model()(torch.zeros(1, 3, 2, dtype=torch.long))


def test_config_round_trip():
    cfg = ModelConfig(
        modality="image",
        num_classes=6,
        ell=2,
        height=2,
        width=3,
        channels=1,
        d_model=8,
        n_heads=2,
        permutation=(5, 4, 3, 2, 1, 0),
    )
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert PrimeModel(cfg).codec.decode(PrimeModel(cfg).codec.encode(torch.arange(6))).tolist() == list(
        range(6)
    )
