"""Tokens <-> images and text, as the model sees them.

Images: token = grey/colour level in 0..C-1, laid out (H, W, channels) row-major; pixel values
0..255 map to levels by round(v * (C - 1) / 255) and back by round(level * 255 / (C - 1)).
Text: byte tokens (C = 256) or ids of the model's BPE vocabulary (pass ``tokenizer``, usually
``model.tokenizer``); invalid UTF-8 is kept in the tokens and replaced only for display.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.config import ModelConfig
from engine.tokenizer import BYTES, Tokenizer

UNDECIDED_CHAR = "\u2591"


def levels_to_pixels(levels: np.ndarray, num_classes: int) -> np.ndarray:
    """Levels 0..C-1 -> uint8 pixel values 0..255."""
    return np.rint(levels.astype(np.float64) * 255.0 / (num_classes - 1)).astype(np.uint8)


def pixels_to_levels(pixels: np.ndarray, num_classes: int) -> np.ndarray:
    """uint8 pixel values 0..255 -> levels 0..C-1 (int64)."""
    return np.rint(pixels.astype(np.float64) * (num_classes - 1) / 255.0).astype(np.int64)


def tokens_to_images(tokens: torch.Tensor, config: ModelConfig) -> np.ndarray:
    """Tokens (N, L) -> uint8 images (N, H, W, channels); undecided tokens (-1) are mid-grey."""
    if config.modality != "image":
        raise ValueError("tokens_to_images needs an image model config")
    tok = tokens.detach().cpu().numpy().reshape(-1, config.height, config.width, config.channels)
    out = levels_to_pixels(np.clip(tok, 0, None), config.num_classes)
    out[tok < 0] = 128
    return out


def images_to_tokens(images: np.ndarray, config: ModelConfig) -> torch.Tensor:
    """uint8 images (N, H, W, channels) -> tokens (N, L)."""
    if config.modality != "image":
        raise ValueError("images_to_tokens needs an image model config")
    expected = (config.height, config.width, config.channels)
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ValueError(
            f"images must have shape (N, {expected[0]}, {expected[1]}, {expected[2]}), got {images.shape}"
        )
    return torch.from_numpy(pixels_to_levels(images, config.num_classes).reshape(images.shape[0], -1))


def text_to_tokens(text: str | bytes, tokenizer: Tokenizer = BYTES) -> torch.Tensor:
    """UTF-8 text (or raw bytes) -> tokens (L,) int64 (bytes, or ids of ``tokenizer``)."""
    return torch.from_numpy(tokenizer.encode(text).astype(np.int64))


def tokens_to_bytes(tokens: torch.Tensor, tokenizer: Tokenizer = BYTES) -> bytes:
    """Decided tokens (L,) -> bytes (undecided tokens are dropped)."""
    return tokenizer.decode(tokens.flatten().tolist())


def tokens_to_text(tokens: torch.Tensor, tokenizer: Tokenizer = BYTES) -> str:
    """Tokens (L,) -> display text: invalid UTF-8 replaced, undecided tokens shown as U+2591."""
    n = tokenizer.vocab_size
    parts: list[str] = []
    run: list[int] = []
    for v in tokens.flatten().tolist():
        if 0 <= v < n:
            run.append(v)
            continue
        if run:
            parts.append(tokenizer.decode(run).decode("utf-8", errors="replace"))
            run = []
        parts.append(UNDECIDED_CHAR)
    if run:
        parts.append(tokenizer.decode(run).decode("utf-8", errors="replace"))
    return "".join(parts)
