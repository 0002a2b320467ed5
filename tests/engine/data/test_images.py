"""Decoding images: quantisation, crop/pad, channels, formats, and bad files."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from engine.data.files import CORRUPT, NOT_AN_IMAGE, TOO_LARGE, TRUNCATED, Skipped
from engine.data.images import DecodedImage, array_tokens, decode_image, parse_background, quantise
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


def test_crop_keeps_the_centre_and_pad_adds_borders_in_the_background_colour() -> None:
    arr = np.full((4, 8), 255, np.uint8)  # wide white image (H=4, W=8)
    arr[:, :2] = 0  # black left edge
    crop = _decode(_png(arr, "L"), height=4, width=4, fit="crop")
    assert isinstance(crop, DecodedImage)
    assert (crop.tokens == 255).all()  # the black edge is cropped away
    pad = _decode(_png(arr, "L"), height=4, width=4, fit="pad", background=(0, 0, 0))
    img = pad.tokens.reshape(4, 4)
    assert (img[0] == 0).all() and (img[-1] == 0).all()  # top/bottom borders
    assert (img[1:3, 2:] > 200).all()
    white = _decode(_png(arr, "L"), height=4, width=4, fit="pad").tokens.reshape(4, 4)  # default
    assert (white[0] == 255).all() and (white[-1] == 255).all()
    teal = _decode(_png(arr, "L"), height=4, width=4, fit="pad", channels=3, background=(0, 128, 128))
    assert teal.tokens.reshape(4, 4, 3)[0].tolist() == [[0, 128, 128]] * 4


def test_channels_levels_and_alpha_onto_the_background() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent on the left half
    rgba[:, 2:, 3] = 255
    out = _decode(_png(rgba, "RGBA"), channels=3, num_classes=4, background=parse_background("black"))
    img = out.tokens.reshape(4, 4, 3)
    assert img.dtype == np.uint8 and img.max() <= 3
    assert (img[:, :2] == 0).all()  # transparent -> black
    white = _decode(_png(rgba, "RGBA"), channels=3, num_classes=4).tokens.reshape(4, 4, 3)
    assert (white[:, :2] == 3).all()  # the default background is white
    assert (white[:, 2:, 0] == 3).all() and (white[:, 2:, 1:] == 0).all()
    half = _decode(_png(rgba, "RGBA"), channels=3, background=parse_background("#204060"))
    assert half.tokens.reshape(4, 4, 3)[0, 0].tolist() == [0x20, 0x40, 0x60]
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


def test_background_names_and_bad_values() -> None:
    assert parse_background("White") == (255, 255, 255) and parse_background("black") == (0, 0, 0)
    assert parse_background("#FF8000") == (255, 128, 0)
    for bad in ("grey", "#12345", "#gg0000", ""):
        with pytest.raises(ValueError, match="white, black or a colour #rrggbb"):
            parse_background(bad)


def test_arrays_take_the_same_steps_as_image_files() -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (3, 6, 10, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(rng.random((3, 6, 10)) < 0.5, 0, 255)
    got = array_tokens(rgba, height=4, width=4, channels=3, num_classes=16, fit="pad", background=(0, 0, 255))
    for i in range(3):
        want = _decode(
            _png(rgba[i], "RGBA"),
            height=4,
            width=4,
            channels=3,
            num_classes=16,
            fit="pad",
            background=(0, 0, 255),
        )
        assert np.array_equal(got[i], want.tokens)
    grey = rng.integers(0, 256, (5, 4, 4, 1), dtype=np.uint8)  # the target size: no resampling
    fast = array_tokens(grey, height=4, width=4, channels=1, num_classes=256)
    assert np.array_equal(fast, grey.reshape(5, 16))
