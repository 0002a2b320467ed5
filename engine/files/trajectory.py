"""Trajectory files: one sampling run's full record in a ``.safetensors`` file (no pickle).

The file holds every field of :class:`~engine.sampling.trajectory.Trajectory` as tensors
(:meth:`~engine.sampling.trajectory.Trajectory.to_tensors`: the digits at their first reveal, the
step each was revealed, corrector events, per-step counters and predictions where recorded) and
string metadata:

- ``format`` = ``"prime-studio-trajectory"``, ``format_version`` = ``"1"``;
- ``trajectory``: the record's small JSON part (codec, scalars, dtypes, its own record version);
- ``settings``: whatever JSON object the caller passes (the studio: the generation settings, the
  model config and the request);
- ``app_version``.

The digit record costs O(sub-tokens) bytes whatever the number of steps; only the (T, N) counters
and recorded predictions grow with T. Writes are atomic (temporary file, fsync, rename; a full disk
is a :class:`~engine.files.atomic.DiskFullError` and leaves no file). Reading checks the header
(its size, every tensor's dtype, shape and byte range against the file size and the shapes the
record's own metadata implies) before any tensor is allocated: a truncated, foreign or hostile
file is a :class:`TrajectoryFileError` naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from engine.files.modelfile import app_version, atomic_write_safetensors
from engine.sampling.trajectory import Trajectory

FORMAT_TAG = "prime-studio-trajectory"
FORMAT_VERSION = "1"
SUPPORTED_FORMAT_VERSIONS = ("1",)
TRAJECTORY_SUFFIX = ".trajectory.safetensors"
MAX_HEADER_BYTES = 4 << 20  # the header of a 4096 x 100,000-step record is far below this
MAX_FILE_BYTES = 8 << 30
DTYPES = {  # safetensors dtype name -> bytes per element (the ones a trajectory may use)
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "I16": 2,
    "I32": 4,
    "I64": 8,
    "F16": 2,
    "BF16": 2,
    "F32": 4,
    "F64": 8,
}


class TrajectoryFileError(ValueError):
    """A trajectory file that cannot be used; the message names the file and the problem."""


def save_trajectory(
    path: str | os.PathLike[str], traj: Trajectory, settings: Mapping[str, Any] | None = None
) -> Path:
    """Write ``traj`` and the JSON-able ``settings`` to ``path`` atomically; returns the path.

    Raises:
        DiskFullError: no space left (no file is left behind; an old file at ``path`` is kept).
        ValueError: ``settings`` is not JSON-serialisable.
    """
    tensors, meta = traj.to_tensors()
    tensors, meta["encoding"] = encode_tensors(tensors, traj.steps)
    try:
        settings_json = json.dumps(dict(settings or {}), sort_keys=True, allow_nan=False, default=str)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"trajectory settings must be JSON-serialisable (no NaN): {exc}") from None
    metadata = {
        "format": FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "trajectory": json.dumps(meta, sort_keys=True),
        "settings": settings_json,
        "app_version": app_version(),
    }
    return atomic_write_safetensors(path, tensors, metadata)  # a full disk: DiskFullError


def read_trajectory_header(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(record metadata, settings) of a trajectory file, checked, without reading any tensor."""
    path = Path(path)
    metadata, _ = _read_header(path)
    return _record_meta(path, metadata), _settings(path, metadata)


def load_trajectory(path: str | os.PathLike[str]) -> tuple[Trajectory, dict[str, Any]]:
    """Read a trajectory file: ``(trajectory, settings)``.

    Raises:
        TrajectoryFileError: missing, truncated, not safetensors, not a trajectory file (e.g. a
            model file), an unsupported version, or tensors that do not fit the record.
    """
    path = Path(path)
    metadata, entries = _read_header(path)
    meta = _record_meta(path, metadata)
    settings = _settings(path, metadata)
    _check_shapes(path, meta, entries)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error type (and OSError)
        raise TrajectoryFileError(f"{path}: unreadable trajectory file ({exc})") from None
    n, length, ell = entries["first_value"]["shape"]
    limit = (int(meta["scalars"]["steps"]) + 1) * max(1, n * length * ell)  # no field is larger
    try:
        tensors = decode_tensors(tensors, meta.pop("encoding", {}), int(meta["scalars"]["steps"]), limit)
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise TrajectoryFileError(f"{path}: the stored tensors do not decode: {exc}") from None
    try:
        traj = Trajectory.from_tensors(tensors, meta)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise TrajectoryFileError(f"{path}: the trajectory record does not fit together: {exc}") from None
    return traj, settings


# --------------------------------------------------------------------------- checks


def _read_header(path: Path) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The safetensors header, bounded and checked against the file size: (metadata, tensors)."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise TrajectoryFileError(f"{path}: not a file")
        if size > MAX_FILE_BYTES:
            raise TrajectoryFileError(f"{path}: {size} bytes, larger than any trajectory this build writes")
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise TrajectoryFileError(f"{path}: truncated or empty ({size} bytes; not a trajectory file)")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len < 2 or header_len > min(MAX_HEADER_BYTES, size - 8):
                raise TrajectoryFileError(
                    f"{path}: not a trajectory file, or truncated (header of {header_len} bytes in a "
                    f"{size}-byte file)"
                )
            raw = handle.read(header_len)
    except FileNotFoundError:
        raise TrajectoryFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise TrajectoryFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise TrajectoryFileError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise TrajectoryFileError(f"{path}: not a safetensors file (its header is not a JSON object)")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise TrajectoryFileError(f"{path}: metadata must map strings to strings")
    data_bytes = size - 8 - header_len
    end = 0
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise TrajectoryFileError(f"{path}: tensor {name!r}: bad header entry")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPES:
            raise TrajectoryFileError(
                f"{path}: tensor {name!r} has dtype {dtype!r}, not one a trajectory uses"
            )
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise TrajectoryFileError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise TrajectoryFileError(f"{path}: tensor {name!r} has invalid data offsets {offsets!r}")
        if offsets[1] - offsets[0] != math.prod(shape) * DTYPES[dtype]:
            raise TrajectoryFileError(f"{path}: tensor {name!r}: its byte range does not match its shape")
        if offsets[1] > data_bytes:
            raise TrajectoryFileError(
                f"{path}: truncated (tensor {name!r} ends at byte {offsets[1]} of {data_bytes} data bytes)"
            )
        end = max(end, offsets[1])
    if end != data_bytes:
        raise TrajectoryFileError(f"{path}: {data_bytes - end} bytes after the last tensor (corrupt file)")
    tag = metadata.get("format")
    if tag != FORMAT_TAG:
        found = "no format tag" if tag is None else f"format {tag!r}"
        raise TrajectoryFileError(f"{path}: not a Prime Studio trajectory file ({found})")
    version = metadata.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise TrajectoryFileError(
            f"{path}: unsupported trajectory format_version {version!r}; this Prime Studio "
            f"({app_version()}) reads {', '.join(SUPPORTED_FORMAT_VERSIONS)}"
        )
    return metadata, header


def _json(path: Path, metadata: Mapping[str, str], key: str) -> dict[str, Any]:
    try:
        value = json.loads(metadata.get(key, ""))
    except ValueError:
        raise TrajectoryFileError(f"{path}: metadata {key!r} is missing or not JSON") from None
    if not isinstance(value, dict):
        raise TrajectoryFileError(f"{path}: metadata {key!r} must be a JSON object")
    return value


def _record_meta(path: Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    meta = _json(path, metadata, "trajectory")
    scalars = meta.get("scalars")
    if not isinstance(scalars, dict) or not isinstance(meta.get("codec"), dict):
        raise TrajectoryFileError(f"{path}: the trajectory metadata has no codec or scalars")
    return meta


def _settings(path: Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    return _json(path, metadata, "settings") if "settings" in metadata else {}


def _check_shapes(path: Path, meta: Mapping[str, Any], entries: Mapping[str, Mapping[str, Any]]) -> None:
    """The tensors' declared shapes must be the ones the record's scalars imply."""
    scalars = meta["scalars"]
    codec = meta["codec"]
    for name in ("first_value", "reveal_step", "times"):
        if name not in entries:
            raise TrajectoryFileError(f"{path}: no {name!r} tensor (not a complete trajectory)")
    shape = entries["first_value"]["shape"]
    steps = scalars.get("steps")
    if not isinstance(steps, int) or entries["times"]["shape"] != [steps + 1]:
        raise TrajectoryFileError(f"{path}: times {entries['times']['shape']} does not match steps {steps!r}")
    if len(shape) != 3 or shape[-1] != codec.get("ell"):
        raise TrajectoryFileError(f"{path}: first_value {shape} is not (N, L, ell={codec.get('ell')!r})")
    n, length, _ = shape
    expected = {
        "reveal_step": shape,
        "revealed": [steps, n],
        "idle": [steps, n],
        "called": [steps, n],
        "predictions": [steps, n, length],
        "reveal_confidence": shape,
    }
    delta = (meta.get("encoding") or {}).get("delta") or {}
    if not isinstance(delta, dict):
        raise TrajectoryFileError(f"{path}: invalid tensor encoding")
    for name, want in expected.items():
        if name in delta and (not isinstance(delta[name], dict) or delta[name].get("shape") != want):
            raise TrajectoryFileError(f"{path}: {name} is stored with a shape other than {want}")
        if name in entries and entries[name]["shape"] != want:
            raise TrajectoryFileError(f"{path}: {name} has shape {entries[name]['shape']}, expected {want}")


def trajectory_nbytes(traj: Trajectory) -> int:
    """Bytes of tensor data a trajectory file of ``traj`` holds (the header comes on top)."""
    tensors, _ = encode_tensors(traj.to_tensors()[0], traj.steps)
    return int(sum(t.numel() * t.element_size() for t in tensors.values()))


# --------------------------------------------------------------------------- compact, lossless storage

_INTS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_BY_NAME = {str(t).removeprefix("torch."): t for t in (*_INTS, torch.bool)}


def _narrow(t: torch.Tensor) -> torch.Tensor:
    """An integer tensor in the smallest integer type that holds its values (exactly)."""
    if t.dtype not in _INTS or t.numel() == 0:
        return t
    low, high = int(t.min()), int(t.max())
    for dtype in _INTS:
        info = torch.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return t.to(dtype) if dtype.itemsize < t.element_size() else t
    return t


def _nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def encode_tensors(tensors: dict[str, torch.Tensor], steps: int) -> tuple[dict[str, torch.Tensor], dict]:
    """Store integer tensors compactly and exactly: (stored tensors, how to decode them).

    Integers go to the smallest type that holds them (``cast``: the type to restore). A per-step
    integer field (T, ...) (e.g. the predictions) whose values rarely change from one step to the
    next is stored as its first row plus the changes (``NAME.first``, ``NAME.where`` (flat
    positions), ``NAME.value``) when that is smaller (``delta``).
    """
    stored: dict[str, torch.Tensor] = {}
    cast: dict[str, str] = {}
    delta: dict[str, dict[str, Any]] = {}
    for name, t in tensors.items():
        if t.dtype in _INTS and t.dim() >= 2 and t.shape[0] == steps and steps > 1 and t.numel():
            flat = t.reshape(steps, -1)  # (T, rest)
            step, pos = (flat[1:] != flat[:-1]).nonzero(as_tuple=True)  # changes after the first row
            first = _narrow(flat[0].clone())
            where = _narrow((step + 1) * flat.shape[1] + pos)
            value = _narrow(flat[1:][step, pos])
            if _nbytes(first, where, value) < _nbytes(_narrow(t)):
                stored.update({f"{name}.first": first, f"{name}.where": where, f"{name}.value": value})
                delta[name] = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
                continue
        narrow = _narrow(t)
        if narrow.dtype != t.dtype:
            cast[name] = str(t.dtype).removeprefix("torch.")
        stored[name] = narrow
    return stored, {"cast": cast, "delta": delta}


def decode_tensors(
    stored: dict[str, torch.Tensor], encoding: dict, steps: int, limit: int
) -> dict[str, torch.Tensor]:
    """Undo :func:`encode_tensors`; no decoded tensor may exceed ``limit`` elements."""
    if not isinstance(encoding, dict):
        raise ValueError("the encoding must be a JSON object")
    out = dict(stored)
    delta, cast = encoding.get("delta") or {}, encoding.get("cast") or {}
    if not isinstance(delta, dict) or not isinstance(cast, dict):
        raise ValueError("the encoding must map names to descriptions")
    for name, spec in delta.items():
        shape, dtype = spec.get("shape"), _BY_NAME.get(str(spec.get("dtype")))
        if (
            dtype not in _INTS
            or not isinstance(shape, list)
            or len(shape) < 2
            or not all(isinstance(d, int) and d >= 0 for d in shape)
            or shape[0] != steps
        ):
            raise ValueError(f"{name}: invalid stored shape or type")
        total = math.prod(shape)
        if total > limit:
            raise ValueError(f"{name}: {total} elements, more than the record can hold ({limit})")
        first, where, value = (out.pop(f"{name}.{part}") for part in ("first", "where", "value"))
        row = total // steps
        if first.numel() != row or where.dim() != 1 or where.shape != value.shape:
            raise ValueError(f"{name}: the stored changes do not match its shape")
        if any(x.dtype not in _INTS for x in (first, where, value)):
            raise ValueError(f"{name}: the stored changes must be integers")
        where = where.long()
        if where.numel() and (
            int(where.min()) < row or int(where.max()) >= total or bool((where[1:] <= where[:-1]).any())
        ):
            raise ValueError(f"{name}: change positions out of order or out of range")
        full = torch.empty(steps, row, dtype=dtype)  # (T, rest)
        full[0] = first.reshape(row).to(dtype)
        value = value.to(dtype)
        # changes are sorted: those of step t have positions in [t * row, (t + 1) * row)
        ends = torch.searchsorted(where, torch.arange(1, steps + 1, dtype=torch.long) * row).tolist()
        for t in range(1, steps):
            full[t] = full[t - 1]
            start, end = ends[t - 1], ends[t]
            if end > start:
                full[t, where[start:end] - t * row] = value[start:end]
        out[name] = full.reshape(shape)
    for name, type_name in cast.items():
        dtype = _BY_NAME.get(str(type_name))
        if name not in out or dtype not in _INTS:
            raise ValueError(f"{name}: invalid stored type")
        out[name] = out[name].to(dtype)
    return out


__all__ = [
    "FORMAT_TAG",
    "FORMAT_VERSION",
    "TRAJECTORY_SUFFIX",
    "TrajectoryFileError",
    "decode_tensors",
    "encode_tensors",
    "load_trajectory",
    "read_trajectory_header",
    "save_trajectory",
    "trajectory_nbytes",
]
