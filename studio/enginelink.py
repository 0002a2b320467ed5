"""The studio's view of the engine: the top-level ``engine`` names it uses, in one place.

Studio code imports engine names from here (``from studio.enginelink import eng``); every name
comes from ``engine/__init__.py``, the engine's public API.
Functions below run on the engine thread (called by jobs in :mod:`studio.bridge`) unless noted.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import torch

import engine

log = logging.getLogger(__name__)
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
            else f"{source.seq_len} {'tokens' if source.tokenizer == 'bpe' else 'bytes'}"
        )
        return f"untrained {source.modality} {geometry}, ell={source.ell}"
    name = Path(str(source)).name
    return name[: -len(".safetensors")] if name.endswith(".safetensors") else name


def recommended_settings(card: Any) -> tuple[dict[str, Any], str]:
    """(the sampler settings a model card recommends, "" ) or ({}, what is wrong with them).

    :func:`engine.recommended_settings` (validated, keys among ``engine.RECOMMENDABLE_SETTINGS``)
    that never raises: a hostile card is one message (GUI thread: pure and fast).
    """
    try:
        return dict(eng.recommended_settings(card)), ""
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        return {}, str(exc)[:2000] or type(exc).__name__


def describe_settings(settings: dict[str, Any]) -> str:
    """``{"corrector": 0.2}`` -> ``"corrector 0.2"`` (:func:`engine.describe_settings`)."""
    return eng.describe_settings(settings)


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


def tokenizer_of(config: Any) -> Any:
    """The tokenizer of a text model config: its BPE vocabulary, else bytes (GUI thread: pure)."""
    return eng.tokenizer_of(config)


def tokens_to_text(tokens: torch.Tensor, tokenizer: Any = None) -> str:
    """Decoded text of one sample's tokens (L,) (undecided shown as U+2591); bytes by default.

    ``tokenizer``: the model's (``tokenizer_of(config)``) for BPE models (GUI thread: pure and fast).
    """
    return eng.tokens_to_text(tokens, tokenizer if tokenizer is not None else eng.BYTES)


def text_to_tokens(text: str, tokenizer: Any = None) -> torch.Tensor:
    """Tokens (L,) of a string: bytes by default, else ids of ``tokenizer`` (the model's)."""
    return eng.text_to_tokens(text, tokenizer if tokenizer is not None else eng.BYTES)


def with_vocabulary(config: Any, model_path: str, digest: str) -> Any:
    """A BPE text config read back without its vocabulary, with it from the model file that made it.

    ``digest``: the vocabulary's (saved with the output); the file's must match. Returns ``config``
    unchanged when it needs no vocabulary or the file is gone, unreadable or holds another one.
    Reads only the file's header (GUI thread: the header of a model file is small).
    """
    if config.modality != "text" or config.tokenizer != "bpe" or config.vocabulary is not None:
        return config
    if not model_path or not Path(model_path).is_file():
        return config
    try:
        vocab = eng.read_model_info(model_path).config.vocabulary
    except (OSError, ValueError) as exc:
        log.info("no vocabulary from %s: %s", model_path, exc)
        return config
    if vocab is None or vocab.vocab_size != config.num_classes or (digest and vocab.digest != digest):
        return config
    return config.replace(vocabulary=vocab)


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
