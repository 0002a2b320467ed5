"""Resolving what ``iter_train`` is given: a model (new or parent), data, output paths."""

from __future__ import annotations

import copy
import os
import platform
from pathlib import Path
from typing import Any

import torch

from engine.config import ModelConfig
from engine.data import DataError, PreflightReport, TokenData, preflight
from engine.files.library import resolve_model as library_path
from engine.files.modelfile import load_model
from engine.models import PrimeModel
from engine.training.checkpoint import checkpoint_path_for, clean_temporaries, model_path_for
from engine.training.config import TrainConfig
from engine.training.events import TrainingError

ModelSource = ModelConfig | PrimeModel | str | os.PathLike
DataSource = TokenData | PreflightReport | str | os.PathLike


def _card_digest(card: dict[str, Any]) -> dict[str, Any]:
    keep = ("name", "data", "metrics", "parent")
    out = {k: card[k] for k in keep if k in card}
    if isinstance(card.get("training"), dict):
        out["training_steps"] = card["training"].get("steps")
    return out


def resolve_model(source: ModelSource, seed: int = 0) -> tuple[PrimeModel, dict[str, Any] | None]:
    """(a fresh model initialised from ``seed``, or the parent model, on the CPU; parent record).

    A string is a model file path or a library name.
    """
    if isinstance(source, ModelConfig):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return PrimeModel(source), None
    if isinstance(source, PrimeModel):
        return copy.deepcopy(source).cpu(), {"name": "in-memory model", "config": source.config.to_dict()}
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        model, info = load_model(path if path.is_file() else library_path(str(source)))
        parent = {"name": info.name, "path": str(info.path), "card": _card_digest(info.card)}
        return model, parent
    raise TypeError(
        f"model must be a ModelConfig, a PrimeModel or a model file path, got {type(source).__name__}"
    )


def resolve_data(
    source: DataSource, config: ModelConfig, train: TrainConfig, parent: dict[str, Any] | None
) -> TokenData:
    """Preprocessed data that fits ``config``, or :class:`DataError` with a clear message."""
    prefix = f"cannot fine-tune {parent['name']}: " if parent else ""
    try:
        if isinstance(source, TokenData):
            data = source
        elif isinstance(source, PreflightReport):
            data = source.require_usable()
        elif isinstance(source, (str, os.PathLike)):
            data = preflight(source, config, train.data_options(), preview=0).require_usable()
        else:
            raise DataError(f"data must be a path, TokenData or PreflightReport, got {type(source).__name__}")
        data.check_model(config)
    except DataError as exc:
        raise DataError(prefix + str(exc)) from None
    if len(data.train_index) == 0:
        raise DataError(prefix + "no training items after the validation split; lower val_fraction")
    return data


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` and check a file can be written there, before any training."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".prime-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise TrainingError(f"cannot write to {folder}: {exc.strerror or exc}") from None


def resolve_paths(out: str | os.PathLike, resume: bool, overwrite: bool) -> tuple[Path, Path]:
    """(model path, checkpoint path), refusing to clobber an earlier run or an existing model."""
    if Path(out).expanduser().is_dir():
        raise TrainingError(
            f"--out {out} is a folder; name the model file to write, e.g. {Path(out) / 'model'}"
        )
    model_path, ckpt = model_path_for(out), checkpoint_path_for(out)
    if not resume and ckpt.exists():
        raise TrainingError(
            f"{ckpt} exists from an earlier run; pass --resume to continue it, or delete it or choose "
            "another --out to start afresh"
        )
    if not resume and model_path.exists() and not overwrite:
        raise TrainingError(
            f"{model_path} already exists; choose another --out or allow overwriting (--force)"
        )
    return model_path, ckpt


def prepare_paths(
    out: str | os.PathLike, resume: bool, overwrite: bool, main: bool = True
) -> tuple[Path, Path, list[str]]:
    """:func:`resolve_paths` after dealing with what an interrupted run left (main rank only).

    A complete, verified temporary checkpoint that a kill left before its rename becomes the
    checkpoint; other temporaries of our naming beside the checkpoint and model are removed.
    Returns (model path, checkpoint path, notes on what was cleaned).
    """
    notes: list[str] = []
    if main and not Path(out).expanduser().is_dir():
        notes = clean_temporaries(checkpoint_path_for(out), model_path_for(out))
    model_path, ckpt = resolve_paths(out, resume, overwrite)
    return model_path, ckpt, notes


def hardware(device: torch.device, world: int) -> dict[str, Any]:
    """Where training ran, for the model card."""
    info: dict[str, Any] = {"device": str(device), "world_size": world, "torch": torch.__version__}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    info["cpu"] = platform.processor() or platform.machine()
    info["cpu_threads"] = torch.get_num_threads()
    return info
