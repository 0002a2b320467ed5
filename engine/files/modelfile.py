"""Model files: one ``.safetensors`` file holding the weights and string metadata.

Metadata keys of a model file:

- ``format`` = ``"prime-studio-model"`` and ``format_version`` = ``"1"``;
- ``config``: the :class:`~engine.config.ModelConfig` as JSON;
- ``card``: the model card as JSON (data set, steps, metrics with how they were measured,
  parent, created, ...).

Loading never runs code (no pickle, no ``torch.load``): safetensors holds raw tensors only.
Every problem with a file raises :class:`ModelFileError` naming what is wrong. Writes are atomic:
a temporary file in the same folder is written, fsynced and then renamed over the target.

:func:`atomic_write_safetensors` and :func:`read_safetensors` are the generic halves, reused for
resumable training checkpoints.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.config import ModelConfig
from engine.files.atomic import atomic_path
from engine.models import PrimeModel

FORMAT_TAG = "prime-studio-model"
FORMAT_VERSION = "1"
SUPPORTED_FORMAT_VERSIONS = ("1",)
MODEL_SUFFIX = ".safetensors"


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be used; the message names the file and the problem."""


def app_version() -> str:
    """The installed Prime Studio version (``"0.1.0+src"`` when running from a source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prime-studio")
    except PackageNotFoundError:
        return "0.1.0+src"


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself, read from its metadata without loading weights."""

    path: Path
    config: ModelConfig
    card: dict[str, Any] = field(hash=False)
    format_version: str
    num_parameters: int
    file_size: int

    @property
    def name(self) -> str:
        """Library name of the model: the file name without ``.safetensors``."""
        name = self.path.name
        return name[: -len(MODEL_SUFFIX)] if name.endswith(MODEL_SUFFIX) else self.path.stem

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (used by ``prime info --json``)."""
        return {
            "name": self.name,
            "path": str(self.path),
            "format_version": self.format_version,
            "num_parameters": self.num_parameters,
            "file_size": self.file_size,
            "config": self.config.to_dict(),
            "base": self.config.base,
            "seq_length": self.config.seq_length,
            "card": self.card,
        }


# --------------------------------------------------------------------------- generic files


def atomic_write_safetensors(
    path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> Path:
    """Write ``tensors`` and string ``metadata`` to ``path`` atomically.

    The data goes to a temporary file in the same folder, which is flushed to disk and then
    renamed over ``path``: a crash or error at any point leaves either the old file or the new one,
    never a partial file. Tensors are copied to contiguous CPU memory (shared storage is allowed).

    Returns:
        The path written.
    """
    path = Path(path)
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"safetensors metadata must map str to str, got {key!r}: {type(value).__name__}")
    flat: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"tensor {key!r} is a {type(tensor).__name__}, not a torch.Tensor")
        # clone: safetensors refuses tensors that share storage (tied weights, views)
        flat[key] = tensor.detach().to("cpu").contiguous().clone()
    size = sum(t.numel() * t.element_size() for t in flat.values())
    with atomic_path(path, expected_size=size) as tmp:
        save_file(flat, str(tmp), metadata=dict(metadata))
    return path


# --------------------------------------------------------------------------- validation


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file")


def _open_error(path: Path, exc: Exception) -> ModelFileError:
    text = str(exc)
    if "incomplete metadata" in text or "not fully covered" in text:
        why = "truncated or corrupt safetensors file (the data is shorter than its header says)"
    elif "header" in text:
        why = f"not a safetensors file ({text})"
    else:
        why = f"unreadable safetensors file ({text})"
    return ModelFileError(f"{path}: {why}")


def read_safetensors_metadata(
    path: str | os.PathLike[str],
) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """Read only the header: (string metadata, tensor name -> shape). No tensor data is loaded."""
    path = Path(path)
    _check_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error type (and OSError)
        raise _open_error(path, exc) from None
    return metadata, shapes


def read_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read every tensor (on the CPU) and the string metadata of a safetensors file.

    Raises:
        ModelFileError: the path is not a readable, complete safetensors file.
    """
    path = Path(path)
    _check_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:
        raise _open_error(path, exc) from None
    return tensors, metadata


# --------------------------------------------------------------------------- model files


def _card_with_defaults(card: Mapping[str, Any] | None) -> dict[str, Any]:
    out = dict(card or {})
    out.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    out.setdefault("app_version", app_version())
    return out


def save_model(
    path: str | os.PathLike[str], model: PrimeModel, card: Mapping[str, Any] | None = None
) -> Path:
    """Save ``model`` (weights, config and model card) to one ``.safetensors`` file, atomically.

    Args:
        path: target file; its folder is created if needed.
        model: a :class:`~engine.models.PrimeModel` (its ``config`` is stored as JSON).
        card: JSON-serialisable model card (data set, steps, metrics and how they were measured,
            parent, ...). ``created`` and ``app_version`` are filled in when absent.

    Returns:
        The path written.
    """
    config: ModelConfig = model.config
    card_dict = _card_with_defaults(card)
    try:
        card_json = json.dumps(card_dict, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model card must be JSON-serialisable (no NaN): {exc}") from None
    metadata = {
        "format": FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "card": card_json,
    }
    return atomic_write_safetensors(path, model.state_dict(), metadata)


def _parse_json(path: Path, metadata: Mapping[str, str], key: str) -> Any:
    if key not in metadata:
        raise ModelFileError(f"{path}: metadata has no {key!r} entry")
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: metadata {key!r} is not valid JSON ({exc})") from None


def _info_from_header(
    path: Path, metadata: Mapping[str, str], shapes: Mapping[str, tuple[int, ...]]
) -> ModelInfo:
    tag = metadata.get("format")
    if tag != FORMAT_TAG:
        found = "no format tag" if tag is None else f"format {tag!r}"
        raise ModelFileError(f"{path}: not a Prime Studio model ({found}; expected format {FORMAT_TAG!r})")
    version = metadata.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ModelFileError(
            f"{path}: unsupported format_version {version!r}; this Prime Studio ({app_version()}) reads "
            f"{', '.join(SUPPORTED_FORMAT_VERSIONS)}"
        )
    config_dict = _parse_json(path, metadata, "config")
    try:
        config = ModelConfig.from_dict(config_dict)
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: invalid model config: {exc}") from None
    card = _parse_json(path, metadata, "card") if "card" in metadata else {}
    if not isinstance(card, dict):
        raise ModelFileError(f"{path}: model card must be a JSON object, got {type(card).__name__}")
    num_parameters = sum(math.prod(shape) for shape in shapes.values())
    return ModelInfo(
        path=path,
        config=config,
        card=card,
        format_version=version,
        num_parameters=int(num_parameters),
        file_size=path.stat().st_size,
    )


def read_model_info(path: str | os.PathLike[str]) -> ModelInfo:
    """Read a model file's metadata (config, card, size) without loading its weights.

    Raises:
        ModelFileError: not a file, not safetensors, truncated, wrong format tag or version,
            bad JSON, or an invalid config (unknown keys are named).
    """
    path = Path(path)
    metadata, shapes = read_safetensors_metadata(path)
    return _info_from_header(path, metadata, shapes)


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_state(
    path: Path, tensors: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> None:
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing tensors: {_names(missing)}")
    if extra:
        problems.append(f"unexpected tensors: {_names(extra)}")
    shaped = [
        f"{key} {tuple(tensors[key].shape)} (expected {tuple(value.shape)})"
        for key, value in expected.items()
        if key in tensors and tensors[key].shape != value.shape
    ]
    if shaped:
        problems.append(f"mis-shaped tensors: {_names(shaped)}")
    kinds = [
        f"{key} {tensors[key].dtype} (expected {value.dtype})"
        for key, value in expected.items()
        if key in tensors and tensors[key].is_floating_point() != value.is_floating_point()
    ]
    if kinds:
        problems.append(f"wrong tensor types: {_names(kinds)}")
    if problems:
        raise ModelFileError(f"{path}: weights do not match the config: {'; '.join(problems)}")
    bad = [
        key for key, value in tensors.items() if value.is_floating_point() and not torch.isfinite(value).all()
    ]
    if bad:
        raise ModelFileError(f"{path}: non-finite (NaN or inf) weights in {_names(sorted(bad))}")


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[PrimeModel, ModelInfo]:
    """Load a model file into a fresh :class:`~engine.models.PrimeModel` in eval mode.

    The stored tensors are compared with a freshly built model's ``state_dict``: missing, extra,
    mis-shaped and non-finite tensors are refused by name.

    Returns:
        ``(model, info)``; the model is on ``device``.

    Raises:
        ModelFileError: any problem with the file.
    """
    path = Path(path)
    tensors, metadata = read_safetensors(path)
    shapes = {key: tuple(value.shape) for key, value in tensors.items()}
    info = _info_from_header(path, metadata, shapes)
    model = PrimeModel(info.config)
    expected = model.state_dict()
    _check_state(path, tensors, expected)
    state = {key: tensors[key].to(expected[key].dtype) for key in expected}
    model.load_state_dict(state, strict=True)
    model.eval()
    return model.to(device), info
