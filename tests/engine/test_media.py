"""PNG grids with settings, partial-state rendering and GIFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.config import ModelConfig
from engine.files.media import MASK_RGB, frame_steps, grid, save_gif, save_png, state_to_rgb
from engine.prime.codec import Codec


def test_partial_tokens_show_the_midpoint_of_what_they_allow() -> None:
    cfg = ModelConfig(
        modality="image", num_classes=16, ell=2, height=1, width=4, channels=1, d_model=16, n_heads=2
    )
    codec = Codec.from_config(cfg)  # base 4, mask 4
    m = codec.mask
    state = torch.tensor([[[2, 3], [2, m], [m, m], [m, 1]]])  # (1, 4, 2)
    rgb = state_to_rgb(state, cfg, codec)  # (1, 1, 4, 3)
    grey = rgb[0, 0, :, 0]
    assert grey[0] == round(11 * 255 / 15)  # fully visible: 2*4+3 = 11
    assert grey[1] == np.rint(9.5 * 255 / 15)  # high digit 2: tokens 8..11
    assert tuple(rgb[0, 0, 2]) == MASK_RGB  # all masked
    assert grey[3] == np.rint(7.0 * 255 / 15)  # low digit 1: tokens 1, 5, 9, 13
    assert (rgb[0, 0, [0, 1, 3], 0] == rgb[0, 0, [0, 1, 3], 2]).all()  # grey stays grey


def test_partial_rgb_pixel_is_masked_only_when_every_channel_is() -> None:
    cfg = ModelConfig(
        modality="image", num_classes=4, ell=1, height=1, width=2, channels=3, d_model=16, n_heads=2
    )
    codec = Codec.from_config(cfg)
    m = codec.mask
    state = torch.tensor([[[m], [m], [m], [3], [m], [m]]])  # pixel 0 all masked, pixel 1 red known
    rgb = state_to_rgb(state, cfg, codec)
    assert tuple(rgb[0, 0, 0]) == MASK_RGB
    assert tuple(rgb[0, 0, 1]) == (255, 128, 128)


def test_png_keeps_text_chunks(tmp_path: Path) -> None:
    images = np.zeros((5, 2, 3, 1), dtype=np.uint8)
    path = save_png(tmp_path / "g.png", grid(images, scale=2), {"seed": "3", "model": "ünïcode"})
    with Image.open(path) as png:
        assert png.text == {"seed": "3", "model": "ünïcode"}
        assert png.size == (3 * 6 + 4 * 2, 2 * 4 + 3 * 2)  # 5 cells -> 3 columns, 2 rows


def test_gif_and_frame_steps(tmp_path: Path) -> None:
    assert frame_steps(5) == [0, 1, 2, 3, 4, 5]
    steps = frame_steps(1000, max_frames=10)
    assert steps[0] == 0 and steps[-1] == 1000 and len(steps) == 10
    frames = [Image.new("RGB", (4, 4), (i * 40, 0, 0)) for i in range(4)]
    with Image.open(save_gif(tmp_path / "a.gif", frames)) as gif:
        assert gif.n_frames == 4 and gif.info["loop"] == 0
