"""``prime generate``'s conditioning flags turned into a :class:`~engine.api.Condition`.

Text: ``--prompt`` (fixed start), ``--suffix`` (fixed text after the generated span) and ``--length``.
Images: ``--image`` with ``--keep-digits K`` (keep the K most significant digits of every pixel:
"keep the coarse image, regenerate the detail") and/or ``--inpaint X,Y,W,H`` (regenerate a box).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from engine.api import Condition
from engine.files.convert import images_to_tokens, text_to_tokens
from engine.files.modelfile import ModelInfo, check_regular_file
from engine.sampling import region_condition
from engine.tokenizer import tokenizer_of


def flag_bytes(text: str, flag: str) -> bytes:
    """A text flag's bytes as given on the command line (invalid UTF-8 there is kept byte for byte).

    Python hands undecodable argument bytes over as surrogate escapes; they turn back into the
    original bytes here, so the model's tokenizer sees exactly what was typed.
    """
    try:
        return text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{flag} holds a lone surrogate (U+{ord(text[exc.start]):04X}) that is not text; "
            "give it as UTF-8 (or any bytes)"
        ) from None


def text_condition_from_flags(
    args: argparse.Namespace, model: Any, info: ModelInfo
) -> tuple[Condition | None, int]:
    """Condition for --prompt/--suffix/--length and the number of tokens to show.

    The prompt and suffix are encoded with the model's tokenizer (bytes, or its BPE vocabulary).
    """
    cfg = info.config
    seq = cfg.seq_length
    tok = tokenizer_of(cfg)
    unit = "bytes" if tok.kind == "bytes" else "tokens"
    empty = torch.zeros(0, dtype=torch.long)
    prompt = text_to_tokens(flag_bytes(args.prompt, "--prompt"), tok) if args.prompt else empty
    suffix = text_to_tokens(flag_bytes(args.suffix, "--suffix"), tok) if args.suffix else empty
    n_p, n_s = prompt.numel(), suffix.numel()
    if n_p > seq:
        raise ValueError(f"the prompt is {n_p} {unit} but model {info.name!r} holds only {seq} tokens")
    if args.length is not None and args.length < 1:
        raise ValueError(f"--length must be >= 1, got {args.length}")
    length = seq - n_p - n_s if args.length is None else args.length
    total = n_p + length + n_s
    if length < 1 or total > seq:
        raise ValueError(
            f"prompt ({n_p} {unit}) + length ({length}) + suffix ({n_s} {unit}) = {total} tokens does not "
            f"fit in model {info.name!r}, which holds {seq} tokens and needs at least 1 to generate"
        )
    if n_p == 0 and n_s == 0:
        return None, total
    tokens = torch.zeros(seq, dtype=torch.long)  # (L,)
    keep = torch.zeros(seq, dtype=torch.bool)  # (L,)
    tokens[:n_p], keep[:n_p] = prompt, True
    tokens[n_p + length : total], keep[n_p + length : total] = suffix, True
    return region_condition(model.codec, tokens, keep), total


def parse_box(text: str, height: int, width: int) -> tuple[int, int, int, int]:
    """``"X,Y,W,H"`` in pixels -> (x, y, w, h), checked to lie inside a ``width`` x ``height`` image."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--inpaint takes X,Y,W,H in pixels (four integers), got {text!r}") from None
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(
            f"--inpaint box {text!r} must have W, H >= 1 and lie inside the {width}x{height} image (X,Y,W,H)"
        )
    return x, y, w, h


def image_condition_from_flags(args: argparse.Namespace, model: Any, info: ModelInfo) -> Condition | None:
    """Condition for --image with --keep-digits and/or --inpaint (image models)."""
    if args.image is None:
        if args.keep_digits is not None or args.inpaint is not None:
            raise ValueError("--keep-digits and --inpaint need --image (the picture to start from)")
        return None
    if args.keep_digits is None and args.inpaint is None:
        raise ValueError("--image needs --keep-digits K and/or --inpaint X,Y,W,H (what to keep)")
    cfg = info.config
    source = Path(args.image).expanduser()
    check_regular_file(source, ValueError)  # a FIFO or a device would block or never end
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(source)
    except (
        UnidentifiedImageError,
        OSError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise ValueError(f"cannot read --image {args.image!r}: {exc}") from None
    try:
        with picture:
            picture = picture.convert("L" if cfg.channels == 1 else "RGB")
            picture = picture.resize((cfg.width, cfg.height), Image.Resampling.LANCZOS)
            pixels = np.asarray(picture, dtype=np.uint8).reshape(1, cfg.height, cfg.width, cfg.channels)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"cannot read --image {args.image!r}: {exc}") from None
    tokens = images_to_tokens(pixels, cfg)[0]  # (L,)
    codec = model.codec
    digits = codec.encode(tokens)  # (L, ell)
    box = torch.zeros(cfg.height, cfg.width, cfg.channels, dtype=torch.bool)  # (H, W, channels)
    if args.inpaint is not None:
        x, y, w, h = parse_box(args.inpaint, cfg.height, cfg.width)
        box[y : y + h, x : x + w] = True
    else:
        box[:] = True
    regenerate = box.flatten()  # (L,) tokens to (partly) regenerate
    fixed = (~regenerate).unsqueeze(-1).expand(digits.shape).clone()  # (L, ell)
    if args.keep_digits is not None:
        if not 1 <= args.keep_digits < cfg.ell:
            raise ValueError(
                f"--keep-digits must be in 1..{cfg.ell - 1} for this model (ell={cfg.ell}), "
                f"got {args.keep_digits}"
            )
        if codec.permutation is not None:
            raise ValueError("--keep-digits needs a model without index shuffling (this one permutes tokens)")
        fixed[regenerate, : args.keep_digits] = True
    return Condition(fixed=fixed, digits=digits)


def conditioning_summary(args: argparse.Namespace) -> dict[str, Any]:
    """The conditioning flags that were given (prompt, suffix, length, image, keep_digits, inpaint)."""
    names = ("prompt", "suffix", "length", "image", "keep_digits", "inpaint")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
