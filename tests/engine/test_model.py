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


# --------------------------------------------------------------------------- rotary positions


def test_text_defaults_to_rotary_and_images_to_learned():
    text = ModelConfig(modality="text", num_classes=256, seq_len=8, d_model=16, n_heads=2)
    image = ModelConfig(modality="image", num_classes=4, height=2, width=2, channels=1, d_model=16, n_heads=2)
    assert (text.positions, image.positions) == ("rotary", "learned")
    names = {n for n, _ in PrimeModel(text).named_parameters()}
    assert not any(n.startswith("pos.") for n in names)  # no absolute position table
    assert "pos.pos" in {n for n, _ in PrimeModel(text.replace(positions="learned")).named_parameters()}


def test_bad_position_settings_are_named():
    with pytest.raises(ValueError, match="rotary positions are for text models"):
        ModelConfig(modality="image", num_classes=4, height=2, width=2, channels=1, positions="rotary")
    with pytest.raises(ValueError, match="even head width"):
        ModelConfig(modality="text", num_classes=256, seq_len=8, d_model=12, n_heads=4, positions="rotary")
    with pytest.raises(ValueError, match="positions must be one of"):
        ModelConfig(modality="text", num_classes=256, seq_len=8, positions="sinusoid")


def test_config_files_without_positions_load_as_learned():
    # model files written before the field existed had learned positions for text too
    old = {"modality": "text", "num_classes": 256, "seq_len": 8, "d_model": 16, "n_heads": 2}
    assert ModelConfig.from_dict(old).positions == "learned"
    new = ModelConfig(**old)
    assert ModelConfig.from_dict(new.to_dict()) == new


def test_rotary_scores_depend_only_on_the_offset():
    from engine.models.transformer import apply_rotary, rotary_tables

    cos, sin = rotary_tables(12, 8)
    gen = torch.Generator().manual_seed(0)
    q_vec, k_vec = torch.randn(8, generator=gen), torch.randn(8, generator=gen)
    x = torch.stack([q_vec, k_vec]).expand(12, 2, 8).transpose(0, 1)[None, :, :, :]  # (1, 2, L, 8)
    rot = apply_rotary(x.contiguous(), cos, sin)[0]  # (2, L, 8): row 0 queries, row 1 keys
    scores = rot[0] @ rot[1].T  # (L, L): the same q at every position against the same k
    for offset in (-3, 0, 2, 5):
        diag = torch.diagonal(scores, offset)
        assert torch.allclose(diag, diag[0].expand_as(diag), atol=1e-5)
    assert not torch.allclose(torch.diagonal(scores, 1)[0], torch.diagonal(scores, 4)[0])
    # a rotation keeps lengths
    assert torch.allclose(rot.norm(dim=-1), x[0].norm(dim=-1), atol=1e-5)


def test_rotary_model_round_trips_through_a_model_file(tmp_path):
    from engine import load_model, save_model

    model = tiny_text_model(ell=2)
    path = save_model(tmp_path / "rot.safetensors", model, {"dataset": "unit-test"})
    back, _ = load_model(path)
    assert back.config.positions == "rotary"
    codec = model.codec
    y = codec.encode(torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(3)))
    y[:, ::3] = codec.mask
    assert torch.equal(model(y), back(y))
