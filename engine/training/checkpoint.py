"""Resumable training checkpoints: one safetensors file, verified before it replaces the old one.

Layout (tensors): ``model/<name>``, ``ema/<name>`` (when EMA is on), ``optim/<param index>/<key>``
(AdamW state), ``rng/torch`` and ``rng/cuda/<i>`` (uint8 RNG states). Metadata (strings):
``format`` = ``prime-studio-train-checkpoint``, ``version``, and JSON for ``state`` (step,
samples seen, data-order position, wall time, init digest), ``model_config``, ``train_config``,
``optim`` (param groups and non-tensor state), ``data`` (fingerprint and summary), ``parent``.

Writing: serialise in memory, write a temporary file next to the target
(:func:`~engine.files.atomic.atomic_path`: ``.NAME.XXXXXXXX.tmp``) with plain ``os.write`` calls,
fsync, read it back and check that the weights equal the ones in memory and differ from the run's
starting weights, and only then rename it over the previous checkpoint (keeping its mode). Any
failure (a full disk, say) removes the temporary file and leaves the previous checkpoint as it
was. A ``digest`` of every tensor is stored and verified on reading.

Reading trusts nothing: only regular files are opened (a symlink to ``/dev/zero`` is refused
before a byte is read), the JSON entries are size- and depth-limited, every entry the trainer needs
must be there with sane values (the step, say), and non-finite weights are refused by name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as save_bytes

from engine.config import ModelConfig
from engine.files.atomic import DiskFullError, atomic_path, stale_temporaries
from engine.files.modelfile import (
    MAX_JSON_BYTES,
    TOKENIZER_DIGEST_KEY,
    TOKENIZER_KEY,
    TOKENIZER_STATS_KEY,
    check_regular_file,
    load_model,
    model_file_contents,
    parse_json,
    read_safetensors,
    tensor_digest,
)
from engine.training.events import TrainingError

FORMAT = "prime-studio-train-checkpoint"
VERSION = "1"
MODEL_SUFFIX = ".safetensors"
MAX_STEP = 10_000_000  # TrainConfig's limit on steps
REQUIRED_META = ("state", "model_config", "model_digest", "train_config", "optim", "data", "parent")
CHECKPOINT_JSON_BYTES = 4 * MAX_JSON_BYTES  # the optimiser's param groups list every parameter index


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
    if isinstance(exc, DiskFullError):
        return exc.strerror or "the disk is full"
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
    metadata = {**metadata, "digest": tensor_digest(flat)}
    old = "; the previous one is kept" if path.exists() else ""
    try:
        try:
            payload = save_bytes(flat, metadata=dict(metadata))
        except RuntimeError:  # tensors sharing storage (tied weights): store copies
            payload = save_bytes({k: v.clone() for k, v in flat.items()}, metadata=dict(metadata))
        # atomic_path: a temporary beside ``path``, removed on any failure; renamed (keeping the
        # old file's mode) only once the block, the read-back check included, has passed
        with atomic_path(path, expected_size=len(payload)) as tmp:
            _write_all(tmp, payload)
            del payload
            verify(_read_prefix(tmp, verify_prefix))
    except OSError as exc:
        raise CheckpointError(f"could not write the {what} {path}: {describe_os_error(exc)}{old}") from None


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


def _load_meta(path: Path, raw: dict[str, str]) -> dict[str, Any]:
    """Parsed, checked JSON metadata of a checkpoint; :class:`CheckpointError` naming what is wrong."""
    if raw.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a Prime Studio training checkpoint (format {str(raw.get('format'))[:40]!r})"
        )
    if raw.get("version") != VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint version {str(raw.get('version'))[:40]!r}")
    missing = [key for key in REQUIRED_META if key not in raw]
    if missing:
        raise CheckpointError(
            f"{path}: the checkpoint has no {', '.join(missing)} entry (incomplete or damaged)"
        )
    meta: dict[str, Any] = {}
    # a BPE model's vocabulary: its digest is kept (resume compares it), the JSON is not parsed here
    meta["vocabulary_digest"] = str(raw.get(TOKENIZER_DIGEST_KEY, ""))[:64]
    for key, value in raw.items():
        if key in ("format", "version", "digest", TOKENIZER_KEY, TOKENIZER_DIGEST_KEY, TOKENIZER_STATS_KEY):
            continue
        try:
            meta[key] = parse_json(value, f"checkpoint entry {key!r}", max_bytes=CHECKPOINT_JSON_BYTES)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    for key in ("state", "model_config", "train_config", "optim", "data"):
        if not isinstance(meta[key], dict):
            raise CheckpointError(f"{path}: checkpoint entry {key!r} must be a JSON object")
    try:
        ModelConfig.from_dict(meta["model_config"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: the checkpoint's model config is invalid ({exc})") from None
    if meta["model_digest"] != config_digest(meta["model_config"]):
        raise CheckpointError(f"{path}: the checkpoint's model config does not match its digest (damaged)")
    if meta["parent"] is not None and not isinstance(meta["parent"], dict):
        raise CheckpointError(f"{path}: checkpoint entry 'parent' must be a JSON object or null")
    state = meta["state"]

    def integer(name: str, low: int, high: int) -> int:
        value = state.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise CheckpointError(
                f"{path}: nonsense {name} {str(value)[:40]!r} in the checkpoint (expected an integer in "
                f"{low}..{high:,}); the file is damaged"
            )
        return value

    integer("step", 0, MAX_STEP)
    integer("samples_seen", 0, MAX_STEP * 65536 * 1024)
    wall = state.get("wall_s")
    if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not math.isfinite(wall) or wall < 0:
        raise CheckpointError(f"{path}: nonsense wall_s {str(wall)[:40]!r} in the checkpoint")
    if not isinstance(state.get("init_digest"), str):
        raise CheckpointError(f"{path}: the checkpoint's state has no init_digest")
    optim = meta["optim"]
    if not isinstance(optim.get("param_groups"), list) or not isinstance(optim.get("scalars", {}), dict):
        raise CheckpointError(f"{path}: the checkpoint's optim entry is incomplete (no param_groups)")
    return meta


def _open_checked(path: Path) -> None:
    """Refuse anything but a regular file, before a byte is read."""
    check_regular_file(path, CheckpointError)


def checkpoint_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Where a run stands, from the checkpoint's header only (no tensors are read).

    Returns ``step``, ``steps`` (planned), ``samples_seen``, ``wall_s``, ``data_fingerprint``,
    ``model_config``, ``train_config`` and ``parent``; :class:`CheckpointError` if unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    _open_checked(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            raw = dict(handle.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable checkpoint ({exc})") from None
    meta = _load_meta(path, raw)
    state, train = meta["state"], meta["train_config"]
    return {
        "step": state["step"],
        "steps": train.get("steps"),
        "samples_seen": state["samples_seen"],
        "wall_s": state["wall_s"],
        "data_fingerprint": meta["data"].get("fingerprint"),
        "model_config": meta["model_config"],
        "train_config": train,
        "parent": meta["parent"],
    }


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and parsed JSON metadata of a training checkpoint; :class:`CheckpointError` if bad.

    Only a regular file is read; the metadata is checked (:func:`_load_meta`), the stored digest
    (when there is one) must match the tensors, and non-finite weights are refused.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise CheckpointError(f"nothing to resume: no checkpoint at {path}")
    _open_checked(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            raw = dict(handle.metadata() or {})
            meta = _load_meta(path, raw)
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {describe_os_error(exc)}") from None
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable checkpoint ({exc})") from None
    digest = raw.get("digest")
    if digest is not None and tensor_digest(tensors) != digest:
        raise CheckpointError(
            f"{path}: the checkpoint's tensors do not match their checksum (the file is corrupt)"
        )
    bad = sorted(
        key
        for key, value in tensors.items()
        if key.startswith(("model/", "ema/", "optim/"))
        and value.is_floating_point()
        and not torch.isfinite(value).all()
    )
    if bad:
        shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
        raise CheckpointError(
            f"{path}: the checkpoint holds NaN (or infinite) weights ({shown}); it cannot be resumed. "
            "The file is damaged: start a new run, or resume from a copy of an earlier checkpoint"
        )
    return tensors, meta


def clean_temporaries(ckpt: Path, model: Path) -> list[str]:
    """Deal with what an interrupted run left beside its checkpoint and model file; notes on what was done.

    A temporary checkpoint (``.NAME.XXXXXXXX.tmp``, or the older ``.NAME.PID.tmp``) that reads back
    complete and verified, and is further along than the checkpoint (or there is none), replaces it:
    the kill came between the write and the rename. Every other temporary of our naming is removed.
    """
    notes: list[str] = []
    try:
        current = checkpoint_state(ckpt)["step"] if ckpt.exists() else -1
    except CheckpointError:
        current = -1
    for tmp in sorted(stale_temporaries(ckpt), key=lambda p: p.stat().st_mtime if p.exists() else 0):
        try:
            step = read_checkpoint(tmp)[1]["state"]["step"]
        except CheckpointError:
            step = -1
        if step > current:
            os.replace(tmp, ckpt)
            current = step
            notes.append(
                f"used the complete checkpoint (step {step}) an interrupted write left in {tmp.name}"
            )
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()
                notes.append(f"removed the temporary file {tmp.name} an interrupted write left")
    leftovers = stale_temporaries(model) + sorted(model.parent.glob(f".{model.name}.*.new{MODEL_SUFFIX}"))
    for tmp in leftovers:
        if tmp.is_file() and not tmp.is_symlink():
            with contextlib.suppress(OSError):
                tmp.unlink()
                notes.append(f"removed the temporary file {tmp.name} an interrupted save left")
    if notes:
        _fsync_dir(ckpt.parent)
    return notes


def save_verified_model(path: Path, model: torch.nn.Module, card: dict[str, Any], init_digest: str) -> Path:
    """Write the model file via a temporary name; rename only after it reloads equal and trained."""
    try:
        tensors, metadata = model_file_contents(model, card)
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        with atomic_path(path, expected_size=size) as tmp:
            _write_all(tmp, save_bytes({k: v.clone() for k, v in tensors.items()}, metadata=metadata))
            back, _ = read_safetensors(tmp)
            check_weights(back, "", model.state_dict(), init_digest, str(path))
            load_model(tmp)
    except OSError as exc:
        raise CheckpointError(f"could not write the model {path}: {describe_os_error(exc)}") from None
    return path
