"""Resumable training checkpoints: one safetensors file, verified before it replaces the old one.

Layout (tensors): ``model/<name>``, ``ema/<name>`` (when EMA is on), ``optim/<param index>/<key>``
(AdamW state), ``rng/torch`` and ``rng/cuda/<i>`` (uint8 RNG states). Metadata (strings):
``format`` = ``prime-studio-train-checkpoint``, ``version``, and JSON for ``state`` (step,
samples seen, data-order position, wall time, init digest), ``model_config``, ``train_config``,
``optim`` (param groups and non-tensor state), ``data`` (fingerprint and summary), ``parent``.

Writing: serialise in memory, write a temporary file next to the target with plain ``os.write``
calls, fsync, read it back and check that the weights equal the ones in memory and differ from
the run's starting weights, and only then ``os.replace`` it over the previous checkpoint. Any
failure (a full disk, say) removes the temporary file and leaves the previous checkpoint as it
was.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from engine.files.modelfile import load_model, read_safetensors, save_model
from engine.training.events import TrainingError

FORMAT = "prime-studio-train-checkpoint"
VERSION = "1"
MODEL_SUFFIX = ".safetensors"


class CheckpointError(TrainingError):
    """A checkpoint could not be written, read or used; the previous checkpoint is intact."""


def model_path_for(out: str | os.PathLike[str]) -> Path:
    """The model file for an ``--out`` argument (``.safetensors`` appended when missing)."""
    path = Path(out).expanduser()
    return path if path.name.endswith(MODEL_SUFFIX) else path.with_name(path.name + MODEL_SUFFIX)


def checkpoint_path_for(out: str | os.PathLike[str]) -> Path:
    """``NAME.safetensors`` -> ``NAME.ckpt.safetensors`` beside it."""
    model = model_path_for(out)
    return model.with_name(model.name[: -len(MODEL_SUFFIX)] + ".ckpt" + MODEL_SUFFIX)


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of tensor names, dtypes, shapes and bytes (sorted by name), 16 hex digits."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def config_digest(config_dict: Mapping[str, Any]) -> str:
    """sha256 of a config's canonical JSON, 16 hex digits."""
    return hashlib.sha256(json.dumps(config_dict, sort_keys=True).encode()).hexdigest()[:16]


def _write_all(path: Path, payload: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
    try:
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def describe_os_error(exc: OSError) -> str:
    """A short reason for a failed write."""
    if exc.errno == errno.ENOSPC:
        return "the disk is full (no space left on device)"
    if exc.errno == errno.EDQUOT:
        return "the disk quota is exceeded"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    return exc.strerror or str(exc)


def write_verified(
    path: Path,
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str],
    verify: Callable[[dict[str, torch.Tensor]], None],
    what: str = "checkpoint",
    verify_prefix: str = "",
) -> None:
    """Write ``tensors`` to ``path`` atomically; ``verify(read_back)`` must pass before the rename.

    ``read_back`` holds the tensors whose names start with ``verify_prefix``, read from the file.

    Raises:
        CheckpointError: writing or verifying failed; ``path`` is unchanged and no temporary file
            is left behind.
    """
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    old = "; the previous one is kept" if path.exists() else ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            payload = save_bytes(flat, metadata=dict(metadata))
        except RuntimeError:  # tensors sharing storage (tied weights): store copies
            payload = save_bytes({k: v.clone() for k, v in flat.items()}, metadata=dict(metadata))
        _write_all(tmp, payload)
        del payload
        verify(_read_prefix(tmp, verify_prefix))
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CheckpointError(f"could not write the {what} {path}: {describe_os_error(exc)}{old}") from None
    except CheckpointError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _read_prefix(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys() if k.startswith(prefix)}


def check_weights(
    read_back: Mapping[str, torch.Tensor],
    prefix: str,
    expected: Mapping[str, torch.Tensor],
    init_digest: str,
    where: str,
) -> None:
    """The ``prefix`` tensors read back equal ``expected`` and differ from the starting weights."""
    got = {k[len(prefix) :]: v for k, v in read_back.items() if k.startswith(prefix)}
    if set(got) != set(expected):
        raise CheckpointError(f"{where}: the saved weights have different names from the model's")
    for name, value in expected.items():
        if not torch.equal(got[name], value.detach().to("cpu")):
            raise CheckpointError(f"{where}: tensor {name} read back differs from the one in memory")
    if init_digest and weights_digest(got) == init_digest:
        raise CheckpointError(
            f"{where}: the weights equal the starting weights, so training changed nothing "
            "(is the learning rate zero?); not saving"
        )


def flatten_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """AdamW ``state_dict()`` -> (tensors ``optim/<i>/<key>``, JSON for the rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{idx}/{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, idx, key = name.split("/", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, entry in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def rng_tensors() -> dict[str, torch.Tensor]:
    """The global torch RNG states (dropout) as uint8 tensors."""
    out = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng/cuda/{i}"] = s
    return out


def restore_rng(tensors: Mapping[str, torch.Tensor]) -> None:
    """Set the global RNG states saved by :func:`rng_tensors`."""
    if "rng/torch" in tensors:
        torch.set_rng_state(tensors["rng/torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng/cuda/"))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def checkpoint_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Where a run stands, from the checkpoint's header only (no tensors are read).

    Returns ``step``, ``steps`` (planned), ``samples_seen``, ``wall_s``, ``data_fingerprint``,
    ``model_config``, ``train_config`` and ``parent``; :class:`CheckpointError` if unreadable.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            raw = dict(handle.metadata() or {})
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable checkpoint ({exc})") from None
    if raw.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a Prime Studio training checkpoint")
    state, train = json.loads(raw["state"]), json.loads(raw["train_config"])
    return {
        "step": state["step"],
        "steps": train["steps"],
        "samples_seen": state["samples_seen"],
        "wall_s": state["wall_s"],
        "data_fingerprint": json.loads(raw["data"]).get("fingerprint"),
        "model_config": json.loads(raw["model_config"]),
        "train_config": train,
        "parent": json.loads(raw["parent"]),
    }


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and parsed JSON metadata of a training checkpoint; :class:`CheckpointError` if bad."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"nothing to resume: no checkpoint at {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {describe_os_error(exc)}") from None
    try:
        tensors = load_bytes(raw)
        header_len = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + header_len])
        meta_raw = header.get("__metadata__", {})
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable checkpoint ({exc})") from None
    if meta_raw.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a Prime Studio training checkpoint (format {meta_raw.get('format')!r})"
        )
    if meta_raw.get("version") != VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint version {meta_raw.get('version')!r}")
    meta = {k: json.loads(v) for k, v in meta_raw.items() if k not in ("format", "version")}
    return tensors, meta


def save_verified_model(path: Path, model: torch.nn.Module, card: dict[str, Any], init_digest: str) -> Path:
    """Write the model file via a temporary name; rename only after it reloads equal and trained."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new.safetensors")
    try:
        save_model(tmp, model, card)
        tensors, _ = read_safetensors(tmp)
        check_weights(tensors, "", model.state_dict(), init_digest, str(path))
        load_model(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"could not write the model {path}: {describe_os_error(exc)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
