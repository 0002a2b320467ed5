"""Outputs on disk: every result saved in the data folder with its full settings.

PNG files carry the settings as text chunks, in the same scheme as ``prime generate``:
``prime-settings`` holds all of them as JSON, and model, seed, steps, sampler settings and app
version are also plain chunks; dropping such a PNG (the studio's or the CLI's) back into the
studio restores them. Also exports animated GIFs of the
denoising and text files.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

SETTINGS_KEY = "prime-settings"
PLAIN_KEYS = (
    "model",
    "seed",
    "steps",
    "num_samples",
    "temperature",
    "top_k",
    "top_p",
    "reveal",
    "corrector",
    "app_version",
)


def timestamp() -> str:
    """A sortable, file-name-safe UTC timestamp."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S-%f")


def save_png(path: Path, rgb: np.ndarray, settings: dict[str, Any]) -> Path:
    """Write uint8 (H, W, 3) as PNG with the settings as text chunks."""
    info = PngImagePlugin.PngInfo()
    info.add_text(SETTINGS_KEY, json.dumps(settings, sort_keys=True, default=str))
    for key in PLAIN_KEYS:
        if key in settings and settings[key] is not None:
            info.add_text(key, str(settings[key]))
    info.add_text("Software", f"Prime Studio {settings.get('app_version', '')}".strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(rgb, "RGB").save(tmp, pnginfo=info)
    tmp.replace(path)
    return path


def read_png_settings(path: str | Path) -> dict[str, Any]:
    """The settings a studio PNG carries; ValueError naming the file if it has none."""
    try:
        with Image.open(path) as image:
            text = dict(getattr(image, "text", {}) or {})
    except OSError as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    for key in (SETTINGS_KEY, "prime:settings"):
        if key in text:
            try:
                return dict(json.loads(text[key]))
            except ValueError:
                pass
    plain = {k: v for k, v in text.items() if k in PLAIN_KEYS}
    if not plain:
        raise ValueError(f"{path}: this PNG carries no Prime Studio settings")
    out: dict[str, Any] = {}
    for key, value in plain.items():
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


def save_gif(path: Path, frames: list[np.ndarray], duration_ms: int = 60, scale: int = 1) -> Path:
    """An animated GIF of uint8 (H, W, 3) frames (nearest-neighbour upscaled by ``scale``)."""
    images = []
    for frame in frames:
        image = Image.fromarray(frame, "RGB")
        if scale > 1:
            image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
        images.append(image)
    durations = [duration_ms] * len(images)
    durations[-1] = max(duration_ms, 1500)  # hold the final sample
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return path


def save_text(path: Path, texts: list[str], settings: dict[str, Any]) -> Path:
    """Samples as a text file, settings as a JSON sidecar next to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sep = "\n\n" + "-" * 40 + "\n\n"
    path.write_text(sep.join(texts), encoding="utf-8")
    sidecar(path, settings)
    return path


def sidecar(path: Path, settings: dict[str, Any]) -> Path:
    """Write ``<path>.json`` with the settings."""
    out = path.with_name(path.name + ".json")
    out.write_text(json.dumps(settings, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return out


def frame_steps(steps: int, max_frames: int = 64) -> list[int]:
    """Which steps (0..steps) to show in an animation of at most ``max_frames`` frames."""
    if steps + 1 <= max_frames:
        return list(range(steps + 1))
    picks = np.linspace(0, steps, max_frames).round().astype(int)
    return sorted(set(int(k) for k in picks))
