"""Model files: one ``.safetensors`` file holding the weights and string metadata.

Metadata keys of a model file:

- ``format`` = ``"prime-studio-model"`` and ``format_version`` = ``"1"``;
- ``config``: the :class:`~engine.config.ModelConfig` as JSON;
- ``card``: the model card as JSON (data set, steps, metrics with how they were measured,
  parent, created, ...);
- ``tokenizer`` (BPE text models only): the byte-level BPE vocabulary as ``tokenizers`` JSON,
  with ``tokenizer_digest`` (its sha256, 16 hex digits) checked on load; its size must equal C;
- ``weights_digest``: ``blake2b-256:<hex>`` over every tensor's name, dtype, shape and bytes,
  computed at save time and verified on load (files written before it existed load without a
  check; ``prime info`` says so).

Hostile files are refused within bounded time and memory: only regular files are opened, the JSON
entries are size- and depth-limited, the config's field types and limits are checked
(:class:`~engine.config.ModelConfig`), and the tensor names and shapes in the header are compared
with what the config implies (:func:`expected_shapes`) before any module is built or any tensor
is read, so a 3 MB file can never make the loader allocate more than the file holds.

Loading never runs code (no pickle, no ``torch.load``): safetensors holds raw tensors only.
Every problem with a file raises :class:`ModelFileError` naming what is wrong. Writes are atomic:
a temporary file in the same folder is written, fsynced and then renamed over the target.

:func:`atomic_write_safetensors` and :func:`read_safetensors` are the generic halves, reused for
resumable training checkpoints.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as save_bytes

from engine.config import ModelConfig
from engine.files.atomic import atomic_path
from engine.models import PrimeModel
from engine.tokenizer import BpeTokenizer, TokenizerError

FORMAT_TAG = "prime-studio-model"
DIGEST_KEY = "weights_digest"
DIGEST_SCHEME = "blake2b-256"
TOKENIZER_KEY = "tokenizer"
TOKENIZER_DIGEST_KEY = "tokenizer_digest"
TOKENIZER_STATS_KEY = "tokenizer_stats"
MAX_JSON_BYTES = 4_000_000  # a config or card entry (the bundled cards are about 2 KB)
MAX_JSON_DEPTH = 32  # nesting of a config or card (the bundled cards nest 4 deep)
MAX_TENSORS = 100_000
FORMAT_VERSION = "1"
SUPPORTED_FORMAT_VERSIONS = ("1",)
MODEL_SUFFIX = ".safetensors"


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be used; the message names the file and the problem."""


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, walked without recursion; stops counting past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def parse_json(
    text: str | bytes, what: str, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """``json.loads`` for untrusted text: size- and depth-limited; every failure is a ValueError.

    ``what`` names the text in the message ("metadata 'card'"). ``RecursionError`` never escapes.
    """
    if len(text) > max_bytes:
        raise ValueError(f"{what} is too large ({len(text):,} bytes; at most {max_bytes:,})")
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply (more than {max_depth} levels)") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{what} is not valid JSON ({exc})") from None
    if _depth(value, max_depth) > max_depth:
        raise ValueError(f"{what} is nested too deeply (more than {max_depth} levels)")
    return value


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """``blake2b-256:<hex>`` over the tensors' names, dtypes, shapes and bytes, sorted by name."""
    h = hashlib.blake2b(digest_size=32)
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{str(t.dtype).removeprefix('torch.')}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return f"{DIGEST_SCHEME}:{h.hexdigest()}"


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
    digest: str | None = None  # the stored weights digest; None for files written before digests

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
            "weights_digest": self.digest,
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
    # serialised in memory and written by us, so a full disk is an OSError (ENOSPC) that
    # atomic_path reports as DiskFullError; safetensors' own file writer raises its own error type
    payload = save_bytes(flat, metadata=dict(metadata))
    with atomic_path(path, expected_size=len(payload)) as tmp:
        tmp.write_bytes(payload)
    return path


# --------------------------------------------------------------------------- validation


def check_regular_file(path: Path, error: type[Exception] | None = None) -> int:
    """The size of ``path``, refusing anything but a regular file (FIFOs, devices, folders).

    A symlink is followed: one to ``/dev/zero`` is refused before a byte is read.
    """
    error = error or ModelFileError
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path}: not a file (a folder)")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: not a regular file (a pipe, device or socket); refusing to read it")
    return info.st_size


def _check_file(path: Path) -> None:
    check_regular_file(path)


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
    metadata, shapes, _ = _read_header(Path(path))
    return metadata, shapes


def _read_header(path: Path) -> tuple[dict[str, str], dict[str, tuple[int, ...]], dict[str, str]]:
    """(metadata, shapes, dtypes) from the header alone; only regular files are opened."""
    _check_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            keys = list(handle.keys())
            if len(keys) > MAX_TENSORS:
                raise ModelFileError(f"{path}: {len(keys):,} tensors (at most {MAX_TENSORS:,})")
            shapes, dtypes = {}, {}
            for key in keys:
                piece = handle.get_slice(key)
                shapes[key], dtypes[key] = tuple(piece.get_shape()), str(piece.get_dtype())
    except ModelFileError:
        raise
    except Exception as exc:  # safetensors raises its own error type (and OSError)
        raise _open_error(path, exc) from None
    return metadata, shapes, dtypes


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
    path: str | os.PathLike[str],
    model: PrimeModel,
    card: Mapping[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Save ``model`` (weights, config and model card) to one ``.safetensors`` file, atomically.

    Args:
        path: target file; its folder is created if needed.
        model: a :class:`~engine.models.PrimeModel` (its ``config`` is stored as JSON).
        card: JSON-serialisable model card (data set, steps, metrics and how they were measured,
            parent, ...). ``created`` and ``app_version`` are filled in when absent.
        dtype: store floating-point weights in this type (``torch.float16`` halves the file;
            loading always builds float32 weights from it). Default: as they are.

    Returns:
        The path written.
    """
    card_dict = _card_with_defaults(card)
    try:
        card_json = json.dumps(card_dict, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model card must be JSON-serialisable (no NaN): {exc}") from None
    tensors, metadata = model_file_contents(model, card_json, dtype)
    return atomic_write_safetensors(path, tensors, metadata)


def model_file_contents(
    model: PrimeModel, card: Mapping[str, Any] | str | None = None, dtype: torch.dtype | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of the model file :func:`save_model` writes, the digest included."""
    if not isinstance(card, str):
        try:
            card = json.dumps(_card_with_defaults(card), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"model card must be JSON-serialisable (no NaN): {exc}") from None
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        if dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise ValueError(f"weights can be stored as float16, bfloat16 or float32, not {dtype}")
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    metadata = {
        "format": FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(model.config.to_dict(), sort_keys=True),
        "card": card,
        DIGEST_KEY: tensor_digest(tensors),
    }
    metadata.update(tokenizer_metadata(model.config))
    return tensors, metadata


def tokenizer_metadata(config: ModelConfig) -> dict[str, str]:
    """The metadata entries that store a BPE model's vocabulary ({} for other models)."""
    if config.tokenizer != "bpe" or config.modality != "text":
        return {}
    if config.vocabulary is None:
        raise ValueError("a BPE text model's config carries no vocabulary; nothing to save it with")
    out = {TOKENIZER_KEY: config.vocabulary.to_json(), TOKENIZER_DIGEST_KEY: config.vocabulary.digest}
    bpt = getattr(config.vocabulary, "trained_bytes_per_token", None)
    if bpt:
        out[TOKENIZER_STATS_KEY] = json.dumps({"bytes_per_token": round(float(bpt), 4)})
    return out


def vocabulary_from_metadata(
    path: Path,
    metadata: Mapping[str, str],
    config_dict: Mapping[str, Any],
    error: type[Exception] | None = None,
) -> BpeTokenizer | None:
    """The BPE vocabulary stored beside a text config (None for byte and image models), checked.

    A missing, corrupt or tampered vocabulary, or one whose size differs from C, raises ``error``.
    """
    error = error or ModelFileError
    if (
        not isinstance(config_dict, Mapping)
        or config_dict.get("modality") != "text"
        or config_dict.get("tokenizer") != "bpe"
    ):
        return None
    raw = metadata.get(TOKENIZER_KEY)
    if raw is None:
        raise error(f"{path}: a BPE text model without its vocabulary (no {TOKENIZER_KEY!r} metadata entry)")
    classes = config_dict.get("num_classes")
    try:
        vocabulary = BpeTokenizer(raw, expected_size=classes if isinstance(classes, int) else None)
    except TokenizerError as exc:
        raise error(f"{path}: {exc}") from None
    stored = metadata.get(TOKENIZER_DIGEST_KEY)
    if stored is not None and stored != vocabulary.digest:
        raise error(
            f"{path}: the vocabulary does not match its checksum (the file is corrupt or was altered)"
        )
    try:
        stats = parse_json(metadata.get(TOKENIZER_STATS_KEY) or "{}", "tokenizer_stats", max_bytes=4096)
        bpt = stats.get("bytes_per_token") if isinstance(stats, dict) else None
        if isinstance(bpt, (int, float)) and not isinstance(bpt, bool) and 0 < bpt < 1e6:
            vocabulary.trained_bytes_per_token = float(bpt)
    except ValueError:
        pass  # statistics are informative only; a damaged entry is ignored
    return vocabulary


def _parse_json(path: Path, metadata: Mapping[str, str], key: str) -> Any:
    if key not in metadata:
        raise ModelFileError(f"{path}: metadata has no {key!r} entry")
    try:
        return parse_json(metadata[key], f"metadata {key!r}")
    except ValueError as exc:
        raise ModelFileError(f"{path}: {exc}") from None


FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
_TORCH_DTYPE_NAMES = {
    "F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64", "I8": "int8", "U8": "uint8",
    "I16": "int16", "I32": "int32", "I64": "int64", "BOOL": "bool",
}  # fmt: skip


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor a model of ``config`` stores, computed without building it.

    Mirrors :class:`~engine.models.PrimeModel` (a test keeps the two equal); it lets a file's header
    be checked before a single module is allocated.
    """
    d, ell = config.d_model, config.ell
    hidden = config.mlp_ratio * d
    out: dict[str, tuple[int, ...]] = {"embed.table.weight": (ell * (config.base + 1), d // ell)}
    if config.positions != "rotary":
        if config.modality == "image":
            out["pos.row"] = (config.height, 1, 1, d)
            out["pos.col"] = (1, config.width, 1, d)
            out["pos.chan"] = (1, 1, config.channels, d)
        else:
            out["pos.pos"] = (config.seq_len, d)
    if config.augment_shift:
        out["shift_embed.weight"] = ((2 * config.augment_shift + 1) ** 2, d)
    block = {
        "norm1.weight": (d,),
        "norm1.bias": (d,),
        "qkv.weight": (3 * d, d),
        "qkv.bias": (3 * d,),
        "proj.weight": (d, d),
        "proj.bias": (d,),
        "norm2.weight": (d,),
        "norm2.bias": (d,),
        "mlp.0.weight": (hidden, d),
        "mlp.0.bias": (hidden,),
        "mlp.2.weight": (d, hidden),
        "mlp.2.bias": (d,),
    }
    for i in range(config.n_layers):
        out.update({f"blocks.{i}.{k}": v for k, v in block.items()})
    out.update({"norm.weight": (d,), "norm.bias": (d,)})
    out.update({"head.weight": (config.num_classes, d), "head.bias": (config.num_classes,)})
    return out


def _shape_problems(
    shapes: Mapping[str, tuple[int, ...]],
    expected: Mapping[str, tuple[int, ...]],
    dtypes: Mapping[str, str] | None = None,
) -> list[str]:
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing tensors: {_names(missing)}")
    if extra:
        problems.append(f"unexpected tensors: {_names(extra)}")
    shaped = [
        f"{key} {tuple(shapes[key])} (expected {tuple(value)})"
        for key, value in expected.items()
        if key in shapes and tuple(shapes[key]) != tuple(value)
    ]
    if shaped:
        problems.append(f"mis-shaped tensors: {_names(shaped)}")
    kinds = [
        f"{key} torch.{_TORCH_DTYPE_NAMES.get(dtypes[key], dtypes[key])} (expected torch.float32)"
        for key in expected
        if dtypes is not None and key in dtypes and dtypes[key] not in FLOAT_DTYPES
    ]
    if kinds:
        problems.append(f"wrong tensor types: {_names(kinds)}")
    return problems


def _info_from_header(
    path: Path,
    metadata: Mapping[str, str],
    shapes: Mapping[str, tuple[int, ...]],
    dtypes: Mapping[str, str] | None = None,
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
    vocabulary = vocabulary_from_metadata(path, metadata, config_dict)
    if vocabulary is not None:
        try:
            config = config.replace(vocabulary=vocabulary)
        except ValueError as exc:
            raise ModelFileError(f"{path}: invalid model config: {exc}") from None
    card = _parse_json(path, metadata, "card") if "card" in metadata else {}
    if not isinstance(card, dict):
        raise ModelFileError(f"{path}: model card must be a JSON object, got {type(card).__name__}")
    problems = _shape_problems(shapes, expected_shapes(config), dtypes)
    if problems:
        raise ModelFileError(f"{path}: weights do not match the config: {'; '.join(problems)}")
    digest = metadata.get(DIGEST_KEY)
    if digest is not None and not (isinstance(digest, str) and digest.startswith(DIGEST_SCHEME + ":")):
        raise ModelFileError(f"{path}: unknown weights digest {digest[:80]!r} (expected {DIGEST_SCHEME})")
    num_parameters = sum(math.prod(shape) for shape in shapes.values())
    return ModelInfo(
        path=path,
        config=config,
        card=card,
        format_version=version,
        num_parameters=int(num_parameters),
        file_size=path.stat().st_size,
        digest=digest,
    )


def read_model_info(path: str | os.PathLike[str]) -> ModelInfo:
    """Read a model file's metadata (config, card, size) without loading its weights.

    Raises:
        ModelFileError: not a file, not safetensors, truncated, wrong format tag or version,
            bad JSON, or an invalid config (unknown keys are named).
    """
    path = Path(path)
    metadata, shapes, dtypes = _read_header(path)
    return _info_from_header(path, metadata, shapes, dtypes)


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_state(
    path: Path, tensors: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> None:
    problems = _shape_problems(
        {k: tuple(v.shape) for k, v in tensors.items()}, {k: tuple(v.shape) for k, v in expected.items()}
    )
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

    The header is checked first (format, config, tensor names and shapes against
    :func:`expected_shapes`), then the tensors are read and compared with a freshly built model's
    ``state_dict``: missing, extra, mis-shaped and non-finite tensors are refused by name, and
    weights that do not match the stored digest are refused.

    Returns:
        ``(model, info)``; the model is on ``device``.

    Raises:
        ModelFileError: any problem with the file.
    """
    path = Path(path)
    info = read_model_info(path)  # header only: nothing is allocated for a file that does not fit
    tensors, metadata = read_safetensors(path)
    if metadata.get(DIGEST_KEY) != info.digest:
        raise ModelFileError(f"{path}: the file changed while it was being read")
    model = PrimeModel(info.config)
    expected = model.state_dict()
    _check_state(path, tensors, expected)
    if info.digest is not None and tensor_digest(tensors) != info.digest:
        raise ModelFileError(
            f"{path}: the weights do not match their checksum (the file is corrupt or was altered)"
        )
    state = {key: tensors[key].to(expected[key].dtype) for key in expected}
    model.load_state_dict(state, strict=True)
    model.eval()
    return model.to(device), info
