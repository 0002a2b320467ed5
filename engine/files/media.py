"""Files people look at: image grids as PNG (with the settings as text chunks) and trajectory GIFs.

Pure numpy / Pillow; used by the ``prime`` CLI. Partially masked tokens are drawn as the midpoint
of the values their visible digits still allow; fully masked pixels get a distinct colour.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine.config import ModelConfig
from engine.files.atomic import atomic_path
from engine.prime.codec import Codec
from engine.prime.filter import consistent_mask

MASK_RGB = (92, 52, 140)  # fully masked pixels in trajectory frames
PAD_RGB = (38, 82, 120)  # gaps between grid cells: not a grey a pixel could take, not the mask colour


def auto_scale(height: int, width: int, target: int = 96) -> int:
    """Integer upscale so that the longer side of a cell is at least about ``target`` pixels."""
    return max(1, target // max(height, width))


def state_to_rgb(state: torch.Tensor, config: ModelConfig, codec: Codec) -> np.ndarray:
    """Digits (N, L, ell) of an image model -> uint8 RGB (N, H, W, 3) for display.

    A token's shown level is the midpoint of the lowest and highest token its visible digits
    allow (exact when all are visible); a pixel whose every channel is fully masked is ``MASK_RGB``.
    """
    if config.modality != "image":
        raise ValueError("state_to_rgb needs an image model")
    y = state.detach().cpu().long()  # (N, L, ell)
    allowed = consistent_mask(y, codec)  # (N, L, C) bool
    num_classes = allowed.shape[-1]
    lowest = allowed.to(torch.uint8).argmax(-1)  # (N, L) first allowed token
    highest = num_classes - 1 - allowed.flip(-1).to(torch.uint8).argmax(-1)  # (N, L)
    level = (lowest + highest).double() / 2.0  # (N, L)
    pixels = np.rint(level.numpy() * 255.0 / (num_classes - 1)).astype(np.uint8)
    n, h, w, c = y.shape[0], config.height, config.width, config.channels
    pixels = pixels.reshape(n, h, w, c)  # (N, H, W, channels)
    rgb = np.repeat(pixels, 3, axis=-1) if c == 1 else pixels
    masked = (y == codec.mask).all(-1).numpy().reshape(n, h, w, c).all(-1)  # (N, H, W)
    rgb = rgb.copy()
    rgb[masked] = MASK_RGB
    return rgb


def grid(images: np.ndarray, scale: int = 1, pad: int = 2, columns: int | None = None) -> Image.Image:
    """uint8 images (N, H, W, 1|3) -> one Pillow image laid out in a near-square grid."""
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected images (N, H, W, 1|3), got shape {images.shape}")
    n, h, w, c = images.shape
    if c == 1:
        images = np.repeat(images, 3, axis=-1)
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.empty((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, 3), dtype=np.uint8)
    canvas[:] = PAD_RGB
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        canvas[top : top + h, left : left + w] = images[i]
    return Image.fromarray(canvas, mode="RGB")


def save_png(path: str | os.PathLike[str], image: Image.Image, text: Mapping[str, str]) -> Path:
    """Write a PNG carrying ``text`` as tEXt/iTXt chunks (model, seed, sampler settings, ...)."""
    info = PngInfo()
    for key, value in text.items():
        if str(value).isascii():
            info.add_text(key, str(value))
        else:
            info.add_itxt(key, str(value))
    path = Path(path)
    with atomic_path(path) as tmp:  # a crash or a full disk keeps the old file
        image.save(tmp, format="PNG", pnginfo=info)
    return path


def frame_steps(steps: int, max_frames: int = 48) -> list[int]:
    """Steps 0..T to show in an animation: at most ``max_frames``, always the first and last."""
    if steps + 1 <= max_frames:
        return list(range(steps + 1))
    picks = np.unique(np.rint(np.linspace(0, steps, max_frames)).astype(int))
    return [int(k) for k in picks]


def save_gif(
    path: str | os.PathLike[str],
    frames: Sequence[Image.Image],
    frame_ms: int = 90,
    hold_last_ms: int = 1500,
) -> Path:
    """Write an animated, looping GIF; the last frame is held for ``hold_last_ms``."""
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    path = Path(path)
    durations = [frame_ms] * (len(frames) - 1) + [hold_last_ms]
    first, *rest = frames
    with atomic_path(path) as tmp:  # a crash or a full disk keeps the old file
        _save_gif_frames(tmp, first, rest, durations)
    return path


def _save_gif_frames(tmp: Path, first: Image.Image, rest: list[Image.Image], durations: list[int]) -> None:
    first.save(
        tmp,
        format="GIF",
        save_all=True,
        append_images=list(rest),
        duration=durations,
        loop=0,
        disposal=1,
        optimize=False,
    )


TEXT_RGB = (226, 226, 230)  # decided characters
PARTIAL_RGB = (240, 170, 60)  # some digits visible
BG_RGB = (24, 24, 28)


def text_frame(
    state: torch.Tensor,
    codec: Codec,
    columns: int = 64,
    cell: tuple[int, int] = (7, 13),
    tokenizer: Any = None,
    final: torch.Tensor | None = None,
) -> Image.Image:
    """Token digits (N, L, ell) -> one trajectory frame of text.

    Decided tokens are drawn as characters, partially revealed tokens as ``?`` (orange), fully
    masked ones as ``_`` (purple); samples are stacked, ``columns`` characters wide. Byte tokens
    take one cell each. With a BPE ``tokenizer`` a token takes as many cells as its text has
    characters in ``final`` (the last step's tokens (N, L)), so every frame of an animation has
    the same layout and size and tokens fill in where they will end up.
    """
    from PIL import ImageDraw, ImageFont

    y = state.detach().cpu().long()  # (N, L, ell)
    tokens = codec.decode(y)  # (N, L), -1 where any digit is masked
    masked = (y == codec.mask).all(-1)  # (N, L)
    n, length = tokens.shape
    bpe = tokenizer is not None and getattr(tokenizer, "kind", "bytes") != "bytes"

    def shown(value: int) -> str:
        if not bpe:
            return chr(value) if 32 <= value < 127 else "."
        text = tokenizer.token_bytes(value).decode("utf-8", errors="replace")
        return "".join(c if 32 <= ord(c) < 127 else "." for c in text) or "."

    if bpe:
        ref = (final if final is not None else tokens).detach().cpu().long()
        widths = [[len(shown(int(v))) if v >= 0 else 1 for v in row.tolist()] for row in ref]
    else:
        widths = [[1] * length for _ in range(n)]
    columns = max(1, min(columns, max(sum(w) for w in widths)))
    places = []  # per sample: (row, column) of each token's first cell
    rows_per = 1
    for row in widths:
        r = q = 0
        where = []
        for w in row:
            if q and q + w > columns:
                r, q = r + 1, 0
            where.append((r, q))
            q += w
        places.append(where)
        rows_per = max(rows_per, r + 1)
    cw, ch = cell
    width, height = columns * cw + 8, n * (rows_per * ch + ch // 2) + 8
    image = Image.new("RGB", (width, height), BG_RGB)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for i in range(n):
        top = 4 + i * (rows_per * ch + ch // 2)
        for j in range(length):
            value = int(tokens[i, j])
            w = widths[i][j]
            if masked[i, j]:
                text, colour = "_" * w, MASK_RGB
            elif value < 0:
                text, colour = "?" * w, PARTIAL_RGB
            else:
                text, colour = shown(value)[:w].ljust(w), TEXT_RGB
            r, q = places[i][j]
            draw.text((4 + q * cw, top + r * ch), text, fill=colour, font=font)
    return image


# --------------------------------------------------------------------------- export helpers


def upscale(image: Image.Image, scale: int) -> Image.Image:
    """``image`` enlarged ``scale`` times with nearest-neighbour sampling (crisp pixels)."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if scale == 1:
        return image
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def webp_animation_supported() -> bool:
    """True when this Pillow can write animated WebP (older Pillows report ``webp_anim``)."""
    from PIL import features

    if not features.check_module("webp"):
        return False
    if "webp_anim" in features.features:  # Pillow < 11 lists it separately
        return bool(features.check_feature("webp_anim"))
    return True


def save_animation(
    path: str | os.PathLike[str],
    frames: Sequence[Image.Image],
    fps: float = 12.0,
    hold_last_ms: int = 1500,
    kind: str | None = None,
) -> Path:
    """Write a looping animation, atomically: GIF or (lossless) WebP by ``kind`` or the suffix.

    Every frame shows for ``1000 / fps`` ms (GIF: rounded to 10 ms, its unit), the last one for at
    least ``hold_last_ms``.

    Raises:
        ValueError: no frames, a frame rate outside 0.1..100, an unknown kind, or no animated
            WebP support in this Pillow.
        DiskFullError: no space left (no file is left behind).
    """
    if not frames:
        raise ValueError("an animation needs at least one frame")
    if not 0.1 <= fps <= 100:
        raise ValueError(f"frame rate must be in 0.1..100 frames per second, got {fps}")
    path = Path(path)
    kind = (kind or path.suffix.lstrip(".")).lower()
    if kind not in ("gif", "webp"):
        raise ValueError(f"animations are .gif or .webp, got {str(path)!r}")
    if kind == "webp" and not webp_animation_supported():
        raise ValueError("this Pillow build cannot write animated WebP (install Pillow with libwebp)")
    frame_ms = max(1, round(1000 / fps))
    if kind == "gif":  # GIF counts in hundredths of a second
        frame_ms = max(10, 10 * round(frame_ms / 10))
    durations = [frame_ms] * (len(frames) - 1) + [max(frame_ms, hold_last_ms)]
    first, *rest = [f.convert("RGB") for f in frames]
    options: dict = {"save_all": True, "append_images": rest, "duration": durations, "loop": 0}
    if kind == "gif":
        options.update(format="GIF", disposal=1, optimize=False)
    else:
        options.update(format="WEBP", lossless=True, quality=100, method=4)
    with atomic_path(path) as tmp:
        first.save(tmp, **options)
    return path
