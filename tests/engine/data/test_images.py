"""Decoding images: quantisation, crop/pad, channels, formats, and bad files."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from engine.data.files import CORRUPT, NOT_AN_IMAGE, TOO_LARGE, TRUNCATED, Skipped
from engine.data.images import DecodedImage, decode_image, quantise
from engine.files.convert import pixels_to_levels
from tests.engine.data._files import write_bomb_png, write_image


def _decode(data: bytes, **kw):
    args = {"height": 4, "width": 4, "channels": 1, "num_classes": 256, "fit": "crop"}
    args.update(kw)
    return decode_image(data, "x", **args)


@pytest.mark.parametrize("num_classes", [2, 3, 4, 16, 17, 100, 255, 256, 1000])
def test_quantise_matches_convert(num_classes: int) -> None:
    v = np.arange(256, dtype=np.uint8)
    assert np.array_equal(quantise(v, num_classes).astype(np.int64), pixels_to_levels(v, num_classes))
    assert quantise(v, num_classes).max() == num_classes - 1


def _png(arr: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def test_crop_keeps_the_centre_and_pad_adds_black_borders() -> None:
    arr = np.full((4, 8), 255, np.uint8)  # wide white image (H=4, W=8)
    arr[:, :2] = 0  # black left edge
    crop = _decode(_png(arr, "L"), height=4, width=4, fit="crop")
    assert isinstance(crop, DecodedImage)
    assert (crop.tokens == 255).all()  # the black edge is cropped away
    pad = _decode(_png(arr, "L"), height=4, width=4, fit="pad")
    img = pad.tokens.reshape(4, 4)
    assert (img[0] == 0).all() and (img[-1] == 0).all()  # top/bottom borders
    assert (img[1:3, 2:] > 200).all()


def test_channels_levels_and_alpha_onto_black() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent on the left half
    rgba[:, 2:, 3] = 255
    out = _decode(_png(rgba, "RGBA"), channels=3, num_classes=4)
    img = out.tokens.reshape(4, 4, 3)
    assert img.dtype == np.uint8 and img.max() <= 3
    assert (img[:, :2] == 0).all()  # transparent -> black
    assert (img[:, 2:, 0] == 3).all() and (img[:, 2:, 1:] == 0).all()
    grey = _decode(_png(rgba, "RGBA"), channels=1)
    assert grey.tokens.shape == (16,)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".bmp", ".gif"])
def test_formats(tmp_path, suffix: str) -> None:
    path = write_image(tmp_path / f"a{suffix}", (10, 6), "RGB")
    out = _decode(path.read_bytes(), channels=3, height=5, width=5)
    assert isinstance(out, DecodedImage)
    assert out.tokens.shape == (75,) and (out.width, out.height) == (10, 6)


def test_gif_uses_the_first_frame() -> None:
    frames = [Image.new("L", (4, 4), v) for v in (200, 10, 10)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    out = _decode(buf.getvalue())
    assert abs(int(out.tokens.mean()) - 200) <= 2


def test_bomb_is_refused_without_decoding(tmp_path) -> None:
    data = write_bomb_png(tmp_path / "bomb.png").read_bytes()
    assert len(data) < 200
    started = time.perf_counter()
    out = _decode(data)
    assert isinstance(out, Skipped) and out.reason == TOO_LARGE
    assert time.perf_counter() - started < 1.0
    # below PIL's own limit, our guard still applies: 9000 x 9000 = 81 MP > 64 MP
    out = _decode(write_bomb_png(tmp_path / "b2.png", 9000, 9000).read_bytes())
    assert isinstance(out, Skipped) and out.reason == TOO_LARGE and "9000x9000" in out.detail


def test_not_an_image_truncated_corrupt(tmp_path) -> None:
    assert _decode(b"hello, not a picture").reason == NOT_AN_IMAGE
    full = write_image(tmp_path / "a.png", (64, 64)).read_bytes()
    assert _decode(full[: len(full) // 2]).reason == TRUNCATED
    assert _decode(full[:20]).reason in (CORRUPT, TRUNCATED, NOT_AN_IMAGE)
