"""Shift augmentation: the shifts themselves, the model told the shift, and runs that resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.config import ModelConfig
from engine.files.modelfile import load_model, read_model_info
from engine.models import PrimeModel
from engine.training import TrainConfig, TrainingError, iter_train, train
from engine.training.augment import shift_images
from tests.engine.data._files import image_folder
from tests.engine.training._tiny import FAST, IMG, pattern_data

SHIFTED = IMG.replace(augment_shift=1)


def _expected(image: np.ndarray, dy: int, dx: int, s: int) -> np.ndarray:
    """``image`` (H, W, C) moved down by dy and right by dx, the edges repeated (numpy's own pad)."""
    H, W = image.shape[:2]
    padded = np.pad(image, ((s, s), (s, s), (0, 0)), mode="edge")
    return padded[s - dy : s - dy + H, s - dx : s - dx + W]


@pytest.mark.parametrize("channels,s", [(1, 1), (3, 1), (1, 2)])
def test_every_image_is_its_own_shift_with_the_edges_repeated(channels: int, s: int) -> None:
    cfg = ModelConfig(
        modality="image", num_classes=256, height=5, width=6, channels=channels, augment_shift=s
    )
    rng = np.random.default_rng(0)
    x0 = torch.from_numpy(rng.integers(0, 256, (200, 5 * 6 * channels)))
    gen = torch.Generator().manual_seed(1)
    shifted, dy, dx = shift_images(x0, cfg, 1.0, gen)
    pairs = set(zip(dy.tolist(), dx.tolist(), strict=True))
    assert (0, 0) not in pairs  # p = 1: every image moves
    assert pairs == {(a, b) for a in range(-s, s + 1) for b in range(-s, s + 1)} - {(0, 0)}
    for i in range(len(x0)):
        image = x0[i].view(5, 6, channels).numpy()
        want = _expected(image, int(dy[i]), int(dx[i]), s)
        assert np.array_equal(shifted[i].view(5, 6, channels).numpy(), want)


def test_the_chance_of_a_shift_and_the_same_seed_drawing_the_same_shifts() -> None:
    x0 = torch.arange(8).repeat(4000, 1)  # 2 x 4 images
    never, dy, dx = shift_images(x0, SHIFTED, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(never, x0) and not dy.any() and not dx.any()
    a = shift_images(x0, SHIFTED, 0.3, torch.Generator().manual_seed(5))
    b = shift_images(x0, SHIFTED, 0.3, torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    moved = ((a[1] != 0) | (a[2] != 0)).float().mean().item()
    assert 0.27 < moved < 0.33  # 4,000 draws: 0.3 within about 4 standard deviations
    with pytest.raises(ValueError, match="augment_shift"):
        shift_images(x0, IMG, 0.5, torch.Generator())


def test_the_model_samples_unshifted_and_tells_shifts_apart() -> None:
    torch.manual_seed(0)
    model = PrimeModel(SHIFTED).eval()
    with torch.no_grad():
        model.shift_embed.weight.normal_()  # as if trained: each shift has its own vector
        y = torch.randint(0, model.codec.base + 1, (3, 8, 2))
        zero = torch.zeros(3, dtype=torch.long)
        centre = model.shift_index(zero, zero)
        assert torch.equal(model(y), model(y, centre))
        assert not torch.allclose(model(y), model(y, model.shift_index(zero + 1, zero)))
    assert PrimeModel(IMG)(y).shape == (3, 8, 4)
    with pytest.raises(ValueError, match="not trained with shift conditioning"):
        PrimeModel(IMG)(y, centre)
    with pytest.raises(ValueError, match="augment_shift is for image models"):
        ModelConfig(modality="text", num_classes=256, seq_len=8, augment_shift=1)
    with pytest.raises(ValueError, match="smaller than the image"):
        IMG.replace(augment_shift=2)  # the image is 2 pixels high
    with pytest.raises(ValueError, match="augment_p must be in"):
        TrainConfig(augment_p=1.5)


def test_a_plain_model_refuses_augmentation_before_training(tmp_path) -> None:
    with pytest.raises(TrainingError, match="augment_shift >= 1"):
        train(IMG, FAST.replace(augment_p=0.5), pattern_data(), tmp_path / "m")


def test_an_augmented_run_resumes_to_the_same_weights_and_saves_the_conditioning(tmp_path) -> None:
    cfg = FAST.replace(augment_p=0.5)
    whole = train(SHIFTED, cfg, pattern_data(), tmp_path / "whole")
    gen = iter_train(SHIFTED, cfg, pattern_data(), tmp_path / "cut")
    for ev in gen:
        if ev.kind == "step" and ev.step == 5:
            break
    gen.close()  # killed: resumes from the step-4 checkpoint
    resumed = train(SHIFTED, cfg, pattern_data(), tmp_path / "cut", resume=True)
    a, _ = load_model(whole.model_path)
    b, _ = load_model(resumed.model_path)
    assert a.config.augment_shift == 1 and "shift_embed.weight" in a.state_dict()
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    plain = train(SHIFTED, FAST, pattern_data(), tmp_path / "plain")
    c, _ = load_model(plain.model_path)
    assert not torch.equal(a.state_dict()["blocks.0.qkv.weight"], c.state_dict()["blocks.0.qkv.weight"])


def test_the_flag_builds_a_conditioned_model_and_the_card_records_it(tmp_path, capsys) -> None:
    folder = image_folder(tmp_path / "imgs", n=6, size=(4, 4), mode="L")
    out = tmp_path / "m"
    flags = ["--size", "tiny", "--height", "4", "--levels", "4", "--d-model", "16", "--n-layers", "1"]
    flags += ["--steps", "2", "--batch-size", "4", "--eval-every", "0", "--preview-every", "0"]
    assert main(["train", "--data", str(folder), "--out", str(out), "--augment-p", "0.5", *flags]) == 0
    info = read_model_info(f"{out}.safetensors")
    assert info.config.augment_shift == 1
    assert info.card["training"]["config"]["augment_p"] == 0.5
    capsys.readouterr()
    text = tmp_path / "notes"
    text.mkdir()
    (text / "a.txt").write_text("words " * 40)
    assert main(["train", "--data", str(text), "--out", str(tmp_path / "t"), "--augment-p", "0.5",
                 "--seq-len", "16", "--steps", "1", "--json"]) == 2  # fmt: skip
    assert "augment_shift" in capsys.readouterr().err
