"""The studio's view of the engine: the top-level ``engine`` names it uses, in one place.

Studio code imports engine names from here (``from studio.enginelink import eng``); every name
comes from ``engine/__init__.py``, the engine's public API.
Functions below run on the engine thread (called by jobs in :mod:`studio.bridge`) unless noted.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

import engine

eng = engine  # eng.SampleRequest, eng.iter_sample, ...: the engine's public (top-level) names


def has(name: str) -> bool:
    """True when the engine provides ``name``."""
    return name in engine.__all__


def random_config(modality: str = "image") -> Any:
    """A small, untrained model configuration for trying the studio with an empty library."""
    if modality == "text":
        return eng.ModelConfig(
            modality="text", num_classes=256, ell=2, seq_len=128, d_model=64, n_layers=2, n_heads=4
        )
    return eng.ModelConfig(
        modality="image",
        num_classes=256,
        ell=2,
        height=16,
        width=16,
        channels=1,
        d_model=64,
        n_layers=2,
        n_heads=4,
    )


def load_model(source: Any) -> tuple[Any, dict, str, bool]:
    """(model, card, path, untrained) from a model, a ModelConfig (random init), a name or a path."""
    if isinstance(source, torch.nn.Module):  # a model built in code (tests, scripts)
        return source.eval(), {}, "", True
    if isinstance(source, eng.ModelConfig):
        seed = random.randrange(2**31)
        torch.manual_seed(seed)
        model = eng.PrimeModel(source).eval()
        card = {
            "description": "Untrained: random weights. Samples are noise until it is trained.",
            "init_seed": seed,
        }
        return model, card, "", True
    path = Path(eng.resolve_model(source)) if has("resolve_model") else Path(source)
    model, info = eng.load_model(path)
    card = dict(getattr(info, "card", {}) or {})
    untrained = not card.get("steps") and not card.get("train_steps") and not card.get("metrics")
    return model.eval(), card, str(path), untrained


def model_name(source: Any, card: dict) -> str:
    """Display name for a loaded model."""
    if isinstance(source, torch.nn.Module):
        cfg = source.config
        return f"in-memory {cfg.modality} model, ell={cfg.ell}"
    if isinstance(source, eng.ModelConfig):
        geometry = (
            f"{source.height}x{source.width}x{source.channels}"
            if source.modality == "image"
            else f"{source.seq_len} bytes"
        )
        return f"untrained {source.modality} {geometry}, ell={source.ell}"
    name = Path(str(source)).name
    return name[: -len(".safetensors")] if name.endswith(".safetensors") else name


def num_parameters(model: Any) -> int:
    """Trainable parameter count."""
    if hasattr(model, "num_parameters"):
        return int(model.num_parameters())
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def probabilities(model: Any, state: torch.Tensor) -> torch.Tensor:
    """Filtered p_theta(x | y) (N, L, C) float32 for a state (N, L, ell) (engine thread)."""
    y = state.long().reshape(-1, state.shape[-2], state.shape[-1])
    logits = model(y)  # (N, L, C)
    return eng.filtered_log_probs(logits, y, model.codec).exp().float()


def tokens_to_images(tokens: torch.Tensor, config: Any):
    """uint8 (N, H, W, channels) images for tokens (N, L) (GUI thread: pure and fast)."""
    if has("tokens_to_images"):
        return eng.tokens_to_images(tokens, config)
    import numpy as np

    t = tokens.reshape(tokens.shape[0], config.height, config.width, config.channels).numpy()
    scaled = np.where(t >= 0, t * (255.0 / (config.num_classes - 1)), 127.5)
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def tokens_to_text(tokens: torch.Tensor) -> str:
    """Decoded text of one sample's byte tokens (L,) (undecided shown as U+2591)."""
    if has("tokens_to_text"):
        return eng.tokens_to_text(tokens)
    out = bytearray()
    for v in tokens.tolist():
        out += "\u2591".encode() if v < 0 else bytes([v])
    return out.decode("utf-8", errors="replace")


def text_to_tokens(text: str) -> torch.Tensor:
    """Byte tokens (L,) of a string."""
    if has("text_to_tokens"):
        return eng.text_to_tokens(text)
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)


def app_version() -> str:
    """The Prime Studio version."""
    try:
        return eng.app_version()
    except (AttributeError, ImportError):
        return "0.1.0+src"


def data_dir() -> Path:
    """The user data folder (created)."""
    path = Path(eng.data_dir())
    path.mkdir(parents=True, exist_ok=True)
    return path
