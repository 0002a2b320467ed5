"""Frozen configuration dataclasses that travel with the weights.

Every config has a strict ``from_dict`` that rejects unknown keys with a message naming them,
and a ``to_dict`` that round-trips through JSON.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

MODALITIES = ("image", "text")
SCHEDULES = ("linear", "polynomial", "cosine")
POSITIONS = ("learned", "rotary")
MAX_CLASSES = 65536
# Sane limits, far above anything this project trains, so that a config read from a (hostile)
# file cannot ask for absurd allocations: they are checked before any module is built.
MAX_D_MODEL = 16384
MAX_LAYERS = 1024
MAX_HEADS = 1024
MAX_MLP_RATIO = 64
MAX_TOKENS = 262_144  # tokens per sample L (height * width * channels, or seq_len): 512 x 512 grey
MAX_SCHEDULE_POWER = 1000.0
INT_FIELDS = (
    "num_classes",
    "ell",
    "height",
    "width",
    "channels",
    "seq_len",
    "d_model",
    "n_layers",
    "n_heads",
    "mlp_ratio",
    "augment_shift",
)
MAX_AUGMENT_SHIFT = 3  # pixels: the shift conditioning has (2 * s + 1) ** 2 entries
FLOAT_FIELDS = ("dropout", "schedule_power")
STR_FIELDS = ("modality", "tokenizer", "positions", "schedule")
# backbone size presets of `prime init --size` and the benchmarks: (d_model, n_layers, n_heads)
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (64, 2, 4),
    "small": (128, 4, 4),
    "base": (256, 6, 8),
}


def smallest_base(num_classes: int, ell: int) -> int:
    """Smallest integer b with b**ell >= num_classes (integer search, no float pow)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if ell < 1:
        raise ValueError(f"ell must be >= 1, got {ell}")
    base = 2
    while base**ell < num_classes:
        base += 1
    return base


def _strict_kwargs(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} keys: {', '.join(unknown)}; accepted: {', '.join(sorted(names))}"
        )
    return dict(data)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: modality, codec, backbone and schedule.

    Images have ``height * width * channels`` tokens with ``num_classes`` grey/colour levels;
    text has ``seq_len`` tokens: bytes (``tokenizer="bytes"``, ``num_classes`` = 256) or entries of
    a learned BPE vocabulary (``tokenizer="bpe"``, ``num_classes`` = its size). The vocabulary
    object rides along in ``vocabulary`` (not part of ``to_dict``: model files and checkpoints store
    its JSON under a metadata key of its own); a config read from a header alone may lack it, and
    then a model cannot be built from it.
    """

    modality: str
    num_classes: int
    ell: int = 1
    # image geometry (modality == "image")
    height: int = 0
    width: int = 0
    channels: int = 0
    # text geometry (modality == "text")
    seq_len: int = 0
    tokenizer: str = ""
    # backbone
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    # image models only: the largest pixel shift the network is told about (0 = none). A model with
    # it learns one embedding per shift (dy, dx) in [-s, s]^2 and trains on shifted images told
    # apart from the real ones, so sampling asks for the unshifted (0, 0) and draws centred images
    # (see TrainConfig.augment_p).
    augment_shift: int = 0
    # how attention sees position: "learned" absolute vectors (images, 2-D aware) or "rotary"
    # (text: relative offsets inside attention). "" picks by modality; files that predate the
    # field load as "learned" (see from_dict).
    positions: str = ""
    # forward process
    schedule: str = "linear"
    schedule_power: float = 3.0
    # optional Prime-v2 index shuffling: a permutation of range(num_classes)
    permutation: tuple[int, ...] | None = field(default=None)
    # the BPE vocabulary (engine.tokenizer.BpeTokenizer) of a tokenizer="bpe" text model
    vocabulary: Any = field(default=None, compare=False, repr=False)

    def _check_types(self) -> None:
        """Ints are real integers (not floats or bools), floats are finite numbers, strings are str."""
        for name in INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
            object.__setattr__(self, name, int(value))
        for name in FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in STR_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {value!r} ({type(value).__name__})")
        limits = (
            ("d_model", MAX_D_MODEL),
            ("n_layers", MAX_LAYERS),
            ("n_heads", MAX_HEADS),
            ("mlp_ratio", MAX_MLP_RATIO),
            ("height", MAX_TOKENS),
            ("width", MAX_TOKENS),
            ("seq_len", MAX_TOKENS),
        )
        for name, limit in limits:
            if getattr(self, name) > limit:
                raise ValueError(f"{name} must be at most {limit:,}, got {getattr(self, name):,}")
        for name in ("height", "width", "channels", "seq_len"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        tokens = self.height * self.width * self.channels if self.modality == "image" else self.seq_len
        if tokens > MAX_TOKENS:
            raise ValueError(
                f"{tokens:,} tokens per sample (height x width x channels) is more than the {MAX_TOKENS:,} "
                "this Prime Studio handles"
            )
        if self.schedule_power > MAX_SCHEDULE_POWER:
            raise ValueError(
                f"schedule_power must be at most {MAX_SCHEDULE_POWER:g}, got {self.schedule_power:g}"
            )

    def __post_init__(self) -> None:
        self._check_types()
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if not 2 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(f"num_classes (C) must be in 2..{MAX_CLASSES}, got {self.num_classes}")
        if not 1 <= self.ell <= 16:
            raise ValueError(f"ell must be in 1..16, got {self.ell}")
        if self.d_model < 1 or self.d_model % self.ell != 0:
            raise ValueError(
                f"d_model={self.d_model} must be a positive multiple of ell={self.ell} "
                "(each sub-token gets d_model/ell embedding channels)"
            )
        if self.n_heads < 1 or self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.n_layers < 1 or self.mlp_ratio < 1:
            raise ValueError(f"n_layers and mlp_ratio must be >= 1, got {self.n_layers}, {self.mlp_ratio}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.augment_shift <= MAX_AUGMENT_SHIFT:
            raise ValueError(
                f"augment_shift must be in 0..{MAX_AUGMENT_SHIFT} pixels, got {self.augment_shift}"
            )
        if self.augment_shift and (
            self.modality != "image" or self.augment_shift >= min(self.height, self.width)
        ):
            raise ValueError(
                "augment_shift is for image models, and must be smaller than the image's height and width"
            )
        if self.positions == "":
            object.__setattr__(self, "positions", "rotary" if self.modality == "text" else "learned")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.positions == "rotary":
            if self.modality != "text":
                raise ValueError("rotary positions are for text models; image models use learned positions")
            head_width = self.d_model // self.n_heads
            if head_width % 2:
                raise ValueError(f"rotary positions need an even head width; d_model/n_heads = {head_width}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule_power <= 0:
            raise ValueError(f"schedule_power must be > 0, got {self.schedule_power}")
        if self.modality == "image":
            if min(self.height, self.width) < 1 or self.channels not in (1, 3):
                raise ValueError(
                    "image models need height >= 1, width >= 1 and channels in (1, 3); got "
                    f"height={self.height}, width={self.width}, channels={self.channels}"
                )
            if self.seq_len:
                raise ValueError("seq_len is for text models; image models use height/width/channels")
        else:
            if self.seq_len < 1:
                raise ValueError(f"text models need seq_len >= 1, got {self.seq_len}")
            if self.height or self.width or self.channels:
                raise ValueError("height/width/channels are for image models")
            if self.tokenizer not in ("", "bytes", "bpe"):
                raise ValueError(f"tokenizer must be 'bytes' or 'bpe', got {self.tokenizer!r}")
            if self.tokenizer == "":
                object.__setattr__(self, "tokenizer", "bytes")
            if self.tokenizer == "bytes" and self.num_classes != 256:
                raise ValueError(f"byte-level text models need num_classes=256, got {self.num_classes}")
            if self.tokenizer == "bytes" and self.vocabulary is not None:
                raise ValueError("a byte-level text model has no vocabulary")
            if self.tokenizer == "bpe":
                if self.num_classes < 257:
                    raise ValueError(
                        f"a BPE vocabulary has at least 257 entries, got num_classes={self.num_classes}"
                    )
                size = getattr(self.vocabulary, "vocab_size", None)
                if self.vocabulary is not None and size != self.num_classes:
                    raise ValueError(
                        f"the vocabulary has {size} entries but num_classes (C) is {self.num_classes}"
                    )
        if self.modality == "image" and self.vocabulary is not None:
            raise ValueError("image models have no vocabulary")
        if self.permutation is not None:
            if not isinstance(self.permutation, (tuple, list)) or any(
                isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in self.permutation
            ):
                raise ValueError(f"permutation must be a list of {self.num_classes} integers")
            perm = tuple(int(v) for v in self.permutation)
            if sorted(perm) != list(range(self.num_classes)):
                raise ValueError(f"permutation must be a permutation of range({self.num_classes})")
            object.__setattr__(self, "permutation", perm)

    @property
    def base(self) -> int:
        """Digit base b: the smallest integer with b**ell >= C."""
        return smallest_base(self.num_classes, self.ell)

    @property
    def seq_length(self) -> int:
        """Number of tokens L per sample."""
        if self.modality == "image":
            return self.height * self.width * self.channels
        return self.seq_len

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (permutation as a list; the vocabulary is stored apart, see the class)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "vocabulary"}
        if self.permutation is not None:
            out["permutation"] = list(self.permutation)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], vocabulary: Any = None) -> ModelConfig:
        """Build from a dict (and the vocabulary stored beside it), rejecting unknown keys by name."""
        kwargs = _strict_kwargs(cls, data)
        if "vocabulary" in kwargs:
            raise ValueError("unknown ModelConfig keys: vocabulary (it is stored apart from the config)")
        kwargs["vocabulary"] = vocabulary
        kwargs.setdefault("positions", "learned")  # written before the field existed
        perm = kwargs.get("permutation")
        if perm is not None:
            if not isinstance(perm, list) or len(perm) > MAX_CLASSES:
                raise ValueError(f"permutation must be a list of at most {MAX_CLASSES} integers")
            kwargs["permutation"] = tuple(perm)
        try:
            return cls(**kwargs)
        except TypeError as exc:  # missing required keys
            raise ValueError(f"invalid ModelConfig: {exc}") from None

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
