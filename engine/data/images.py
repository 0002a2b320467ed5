"""Decoding one image file into model tokens: size, channels and levels of a model config.

Steps, in order: header check (the decompression-bomb guard runs *before* any pixel is
decoded), first frame (GIF/WebP animations), EXIF orientation, transparency composited onto the
background colour (white by default: Debian's Adwaita 16 x 16 icons, 713 RGBA PNGs, come out one
flat colour in 618 cases on black and in none on white, since most icons are dark glyphs on
transparency), grey ("L") or RGB, resize, then centre-crop ("crop": fill the target, cut the
overflow) or pad ("pad": fit inside the target, borders in the background colour), then
quantisation of 0..255 to the model's C levels as ``level = round(v * (C - 1) / 255)`` (the same
rule as :mod:`engine.files.convert`; it is computed in integers and never ties, because
2 v (C - 1) is even and 255 is odd).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.data.files import CORRUPT, NOT_AN_IMAGE, TOO_LARGE, TRUNCATED, Skipped

FITS = ("crop", "pad")
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
DEFAULT_BACKGROUND = "white"
DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000; a 20000 x 20000 image (400 MP) is refused unread


@dataclass(frozen=True)
class DecodedImage:
    """Tokens (H * W * channels,) in row-major (H, W, channels) order, plus the original size."""

    tokens: np.ndarray
    width: int
    height: int
    mode: str


def quantise(values: np.ndarray, num_classes: int) -> np.ndarray:
    """0..255 values -> levels 0..C-1 with level = round(v * (C - 1) / 255), exactly.

    uint8 input goes through a 256-entry table (no int64 copy of a large array).
    """
    if values.dtype == np.uint8:
        return quantise(np.arange(256), num_classes)[values]
    v = values.astype(np.int64)
    levels = (2 * v * (num_classes - 1) + 255) // 510  # (same shape)
    return levels.astype(np.uint8 if num_classes <= 256 else np.uint16)


def parse_background(text: str) -> tuple[int, int, int]:
    """Parse a background: white, black or #rrggbb -> (r, g, b); ValueError names what is accepted."""
    value = str(text).strip().lower()
    if value in BACKGROUNDS:
        return BACKGROUNDS[value]
    if len(value) == 7 and value.startswith("#"):
        try:
            return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)
        except ValueError:
            pass
    raise ValueError(f"background must be white, black or a colour #rrggbb, got {text!r}")


def _fill(background: tuple[int, int, int], mode: str) -> int | tuple[int, int, int]:
    """The background as a pixel value of ``mode`` ("L" uses Pillow's own luminance rule)."""
    if mode == "L":
        return int(Image.new("RGB", (1, 1), background).convert("L").getpixel((0, 0)))
    return background


def _to_mode(
    im: Image.Image, channels: int, background: tuple[int, int, int] = BACKGROUNDS[DEFAULT_BACKGROUND]
) -> Image.Image:
    """Composite transparency onto ``background`` and convert to "L" (1 channel) or "RGB" (3)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # high bit depth grey: scale, do not clip
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode != "F" else max(float(arr.max()), 1.0)
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (*background, 255)), rgba)
    return im.convert("L" if channels == 1 else "RGB")


def _fit(
    im: Image.Image, width: int, height: int, fit: str, background: tuple[int, int, int] = (0, 0, 0)
) -> Image.Image:
    """Resize so the image covers ("crop") or fits inside ("pad") width x height, then centre."""
    w, h = im.size
    scale = max(width / w, height / h) if fit == "crop" else min(width / w, height / h)
    new_w = max(1, round(w * scale))
    new_h = max(1, round(h * scale))
    if fit == "crop":
        new_w, new_h = max(new_w, width), max(new_h, height)
    else:
        new_w, new_h = min(new_w, width), min(new_h, height)
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if fit == "crop":
        left = (new_w - width) // 2
        top = (new_h - height) // 2
        return im.crop((left, top, left + width, top + height))
    canvas = Image.new(im.mode, (width, height), _fill(background, im.mode))
    canvas.paste(im, ((width - new_w) // 2, (height - new_h) // 2))
    return canvas


def decode_image(
    data: bytes,
    rel: str,
    *,
    height: int,
    width: int,
    channels: int,
    num_classes: int,
    fit: str = "crop",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = BACKGROUNDS[DEFAULT_BACKGROUND],
) -> DecodedImage | Skipped:
    """Decode an image file's bytes into (height * width * channels,) level tokens.

    Returns a :class:`Skipped` (not an exception) for files that cannot be used: not an image,
    truncated, corrupt, or larger than ``max_pixels`` (checked from the header, before decoding).
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return Skipped(rel, NOT_AN_IMAGE, "not a file format Pillow can read")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Skipped(rel, TOO_LARGE, f"decompression-bomb guard: {exc}")
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return Skipped(rel, CORRUPT, f"bad header ({exc})")
    w, h = im.size
    if w < 1 or h < 1:
        return Skipped(rel, CORRUPT, f"empty image ({w}x{h})")
    if w * h > max_pixels:
        return Skipped(
            rel,
            TOO_LARGE,
            f"{w}x{h} = {w * h / 1e6:.1f} megapixels exceeds the limit of {max_pixels / 1e6:.1f} "
            "(decompression-bomb guard; not decoded)",
        )
    mode = im.mode
    try:
        im.seek(0)
        if im.format == "JPEG":
            im.draft("RGB" if channels == 3 else "L", (2 * width, 2 * height))
        im.load()
        im = ImageOps.exif_transpose(im)
        im = _fit(_to_mode(im, channels, background), width, height, fit, background)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Skipped(rel, TOO_LARGE, f"decompression-bomb guard: {exc}")
    except (OSError, EOFError) as exc:
        text = str(exc)
        reason = TRUNCATED if ("truncated" in text or isinstance(exc, EOFError)) else CORRUPT
        return Skipped(rel, reason, text or type(exc).__name__)
    except (SyntaxError, ValueError, MemoryError) as exc:
        return Skipped(rel, CORRUPT, str(exc) or type(exc).__name__)
    pixels = np.asarray(im, dtype=np.uint8).reshape(height, width, channels)  # (H, W, ch)
    return DecodedImage(quantise(pixels, num_classes).reshape(-1), w, h, mode)


_ARRAY_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def array_tokens(
    images: np.ndarray,
    *,
    height: int,
    width: int,
    channels: int,
    num_classes: int,
    fit: str = "crop",
    background: tuple[int, int, int] = BACKGROUNDS[DEFAULT_BACKGROUND],
) -> np.ndarray:
    """uint8 images (N, h, w, c) with c in 1, 3, 4 -> level tokens (N, height * width * channels).

    The same steps as image files: alpha composited onto ``background``, grey or RGB, resized and
    cropped or padded, quantised. Images already of the target size and channels skip Pillow.
    """
    n, h, w, c = images.shape
    if (h, w) == (height, width) and c == channels:
        return quantise(np.asarray(images), num_classes).reshape(n, -1)  # (N, L)
    out = np.empty((n, height * width * channels), dtype=np.uint8 if num_classes <= 256 else np.uint16)
    for i in range(n):
        item = np.asarray(images[i])
        im = Image.fromarray(item[..., 0] if c == 1 else item, _ARRAY_MODES[c])
        im = _fit(_to_mode(im, channels, background), width, height, fit, background)
        out[i] = quantise(np.asarray(im, dtype=np.uint8).reshape(-1), num_classes)
    return out
