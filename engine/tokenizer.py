"""Text tokenizers: raw bytes (C = 256) or a byte-level BPE vocabulary learned from the data.

A text model's tokens are either the bytes of the UTF-8 text (``"bytes"``, every file round-trips)
or entries of a byte-level BPE vocabulary (``"bpe"``) learned with the ``tokenizers`` library and
stored, as its JSON, in the model file's metadata. Both kinds share one small interface:

- ``encode(data: bytes | str) -> np.ndarray`` of int64 ids, ``decode(ids) -> bytes``;
- ``token_bytes(i)``: the bytes of vocabulary entry ``i`` (what a token stands for);
- ``vocab_size`` (the model's C) and ``kind``.

Every byte string round-trips exactly through a BPE vocabulary too: the vocabulary always holds
the 256 single bytes, valid UTF-8 runs go through the learned merges, and any byte that is not
part of valid UTF-8 becomes its single-byte token. Decoding concatenates the entries' bytes, so
it never depends on a decoder configuration. Loading a vocabulary parses JSON and checks it; no
code is executed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

TOKENIZER_KINDS = ("bytes", "bpe")
MAX_VOCAB = 65536
MIN_VOCAB = 257  # the 256 bytes plus at least one merge
MAX_TOKENIZER_JSON = 64 << 20  # bytes; a 65,536-entry vocabulary is about 3 MB


class TokenizerError(ValueError):
    """A vocabulary that cannot be used (corrupt, of the wrong kind, or of the wrong size)."""


@lru_cache(maxsize=1)
def byte_alphabet() -> tuple[str, ...]:
    """The printable character byte-level BPE writes for each byte 0..255 (GPT-2's mapping).

    Printable Latin-1 bytes stand for themselves; the others are shifted to U+0100 onwards.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars = {b: chr(b) for b in keep}
    shift = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + shift)
            shift += 1
    return tuple(chars[b] for b in range(256))


def _utf8_runs(data: bytes) -> list[tuple[bool, bytes]]:
    """Split ``data`` into (is_valid_utf8, piece) runs; invalid pieces are single bytes."""
    runs: list[tuple[bool, bytes]] = []
    start = 0
    while start < len(data):
        try:
            data[start:].decode("utf-8")
            runs.append((True, data[start:]))
            break
        except UnicodeDecodeError as exc:
            bad = start + exc.start
            if bad > start:
                runs.append((True, data[start:bad]))
            end = start + exc.end
            runs.extend((False, data[i : i + 1]) for i in range(bad, end))
            start = end
    return runs


class ByteTokenizer:
    """Every byte is a token (C = 256)."""

    kind = "bytes"
    vocab_size = 256

    def encode(self, data: bytes | str) -> np.ndarray:
        """Bytes (or str, as UTF-8) -> int64 ids (n,)."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        return np.frombuffer(raw, dtype=np.uint8).astype(np.int64)

    def decode(self, ids: Iterable[int]) -> bytes:
        """Ids -> bytes; ids outside 0..255 (masked, -1) are skipped."""
        return bytes(int(i) for i in ids if 0 <= int(i) < 256)

    def token_bytes(self, i: int) -> bytes:
        """The byte token ``i`` stands for."""
        return bytes([int(i)])

    def to_json(self) -> str:
        """Nothing to store: byte models need no vocabulary."""
        return ""

    @property
    def digest(self) -> str:
        """A fixed name: all byte tokenizers are the same."""
        return "bytes"

    def __repr__(self) -> str:
        return "ByteTokenizer()"


BYTES = ByteTokenizer()


def _check_structure(obj: object, expected_size: int | None) -> None:
    """Refuse JSON that is not a plain byte-level BPE vocabulary, by what is wrong."""
    if not isinstance(obj, dict):
        raise TokenizerError("the tokenizer is not a JSON object")
    model = obj.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise TokenizerError("the tokenizer is not a BPE vocabulary")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not vocab:
        raise TokenizerError("the tokenizer has no vocabulary")
    if len(vocab) > MAX_VOCAB:
        raise TokenizerError(
            f"the vocabulary has {len(vocab):,} entries; at most {MAX_VOCAB:,} are supported"
        )
    pre = obj.get("pre_tokenizer")
    if not isinstance(pre, dict) or pre.get("type") != "ByteLevel":
        raise TokenizerError("the tokenizer is not byte-level (its pre-tokenizer must be ByteLevel)")
    if obj.get("normalizer") is not None:
        raise TokenizerError("the tokenizer has a normalizer, so text would not round-trip; refused")
    if obj.get("added_tokens"):
        raise TokenizerError("the tokenizer has added (special) tokens; a Prime vocabulary has none")
    ids = sorted(v for v in vocab.values() if isinstance(v, int) and not isinstance(v, bool))
    if len(ids) != len(vocab) or ids != list(range(len(vocab))):
        raise TokenizerError("the vocabulary's ids are not exactly 0..V-1")
    if not all(isinstance(k, str) and k for k in vocab):
        raise TokenizerError("the vocabulary holds an empty or non-text entry")
    missing = [c for c in byte_alphabet() if c not in vocab]
    if missing:
        raise TokenizerError(
            f"the vocabulary lacks {len(missing)} of the 256 single bytes, so some text cannot be encoded"
        )
    if expected_size is not None and len(vocab) != expected_size:
        raise TokenizerError(
            f"the vocabulary has {len(vocab):,} entries but the model has C = {expected_size:,} classes"
        )


class BpeTokenizer:
    """A byte-level BPE vocabulary (``tokenizers`` JSON), checked on construction."""

    kind = "bpe"

    def __init__(self, json_text: str, expected_size: int | None = None) -> None:
        if not isinstance(json_text, str) or not json_text:
            raise TokenizerError("the tokenizer JSON is missing or empty")
        if len(json_text) > MAX_TOKENIZER_JSON:
            raise TokenizerError(
                f"the tokenizer JSON is {len(json_text) >> 20} MB; at most "
                f"{MAX_TOKENIZER_JSON >> 20} MB is accepted"
            )
        try:
            obj = json.loads(json_text)
        except (ValueError, RecursionError) as exc:
            raise TokenizerError(f"the tokenizer JSON is corrupt ({exc})") from None
        _check_structure(obj, expected_size)
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise TokenizerError(
                "BPE text models need the 'tokenizers' package: pip install tokenizers"
            ) from None
        try:
            self._tok = Tokenizer.from_str(json_text)
        except Exception as exc:  # the Rust parser's own error type
            raise TokenizerError(f"the tokenizer JSON could not be read ({exc})") from None
        self._json = json_text
        inverse = {c: b for b, c in enumerate(byte_alphabet())}
        vocab: dict[str, int] = obj["model"]["vocab"]
        table: list[bytes] = [b""] * len(vocab)
        for entry, i in vocab.items():
            try:
                table[i] = bytes(inverse[c] for c in entry)
            except KeyError:
                raise TokenizerError(
                    f"vocabulary entry {i} is not written in the byte-level alphabet"
                ) from None
        self._bytes = table
        self._byte_ids = np.array([vocab[c] for c in byte_alphabet()], dtype=np.int64)  # (256,)
        self.vocab_size = len(table)
        self._digest = hashlib.sha256(json_text.encode("utf-8")).hexdigest()[:16]
        # UTF-8 bytes per token on the text the vocabulary was learned from (None if unknown);
        # stored beside the JSON, so fine-tuning can say how well new data is covered
        self.trained_bytes_per_token: float | None = None

    # ------------------------------------------------------------------ encode / decode
    def encode(self, data: bytes | str) -> np.ndarray:
        """Bytes (or str, as UTF-8) -> int64 ids (n,); lossless for any bytes."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        parts: list[np.ndarray] = []
        for valid, piece in _utf8_runs(raw):
            if valid:
                ids = self._tok.encode(piece.decode("utf-8"), add_special_tokens=False).ids
                parts.append(np.asarray(ids, dtype=np.int64))
            else:
                parts.append(self._byte_ids[np.frombuffer(piece, dtype=np.uint8)])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def encode_batch(self, texts: Sequence[bytes]) -> list[np.ndarray]:
        """Several documents at once (valid UTF-8 ones in one parallel call)."""
        out: list[np.ndarray | None] = [None] * len(texts)
        plain: list[tuple[int, str]] = []
        for k, raw in enumerate(texts):
            try:
                plain.append((k, bytes(raw).decode("utf-8")))
            except UnicodeDecodeError:
                out[k] = self.encode(raw)
        if plain:
            encs = self._tok.encode_batch([s for _, s in plain], add_special_tokens=False)
            for (k, _), enc in zip(plain, encs, strict=True):
                out[k] = np.asarray(enc.ids, dtype=np.int64)
        return [o if o is not None else np.zeros(0, dtype=np.int64) for o in out]

    def decode(self, ids: Iterable[int]) -> bytes:
        """Ids -> bytes; ids outside the vocabulary (masked, -1) are skipped."""
        n = self.vocab_size
        return b"".join(self._bytes[int(i)] for i in ids if 0 <= int(i) < n)

    def token_bytes(self, i: int) -> bytes:
        """The bytes vocabulary entry ``i`` stands for."""
        return self._bytes[int(i)]

    def to_json(self) -> str:
        """The vocabulary as stored in a model file."""
        return self._json

    @property
    def digest(self) -> str:
        """sha256 of the JSON (16 hex digits): equal digests, identical vocabularies."""
        return self._digest

    def longest_tokens(self, n: int = 8) -> list[bytes]:
        """The ``n`` longest entries (by bytes), longest first."""
        order = sorted(range(self.vocab_size), key=lambda i: (-len(self._bytes[i]), i))
        return [self._bytes[i] for i in order[:n]]

    def __repr__(self) -> str:
        return f"BpeTokenizer(vocab_size={self.vocab_size}, digest={self._digest})"


@dataclass(frozen=True)
class LearnedVocabulary:
    """What :func:`learn_bpe` made, and whether the data held as many entries as were asked for."""

    tokenizer: BpeTokenizer
    requested: int
    note: str  # "" or a sentence saying the vocabulary was capped


def learn_bpe(documents: Iterable[bytes], vocab_size: int) -> LearnedVocabulary:
    """Learn a byte-level BPE vocabulary of at most ``vocab_size`` entries from ``documents``.

    Deterministic: the same documents in the same order give the same JSON. Merges need a pair
    seen at least twice, so small data yields fewer entries than asked; the note says so.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TokenizerError(f"the vocabulary size must be an integer, got {vocab_size!r}")
    if not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise TokenizerError(f"the vocabulary size must be in {MIN_VOCAB}..{MAX_VOCAB:,}, got {vocab_size:,}")
    try:
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    except ImportError:
        raise TokenizerError(
            "learning a BPE vocabulary needs the 'tokenizers' package: pip install tokenizers"
        ) from None
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    texts = (bytes(d).decode("utf-8", errors="replace") for d in documents)
    tok.train_from_iterator(texts, trainer)
    learned = BpeTokenizer(tok.to_str())
    note = ""
    if learned.vocab_size < vocab_size:
        note = (
            f"the data supports {learned.vocab_size:,} vocabulary entries (every further pair occurs only "
            f"once), not the {vocab_size:,} asked for; using {learned.vocab_size:,}"
        )
    if learned.vocab_size < MIN_VOCAB:
        raise TokenizerError("the data is too small to learn any BPE merge; use the bytes tokenizer")
    return LearnedVocabulary(learned, vocab_size, note)


Tokenizer = ByteTokenizer | BpeTokenizer


def tokenizer_of(config: object) -> Tokenizer:
    """The tokenizer a text model config carries (``BYTES`` for byte models and images)."""
    vocab = getattr(config, "vocabulary", None)
    return vocab if vocab is not None else BYTES


def bytes_per_token(tokenizer: Tokenizer, documents: Iterable[bytes]) -> float:
    """UTF-8 bytes per token of ``tokenizer`` over ``documents`` (0.0 when empty)."""
    n_bytes = n_tokens = 0
    for d in documents:
        n_bytes += len(d)
        n_tokens += len(tokenizer.encode(d))
    return n_bytes / n_tokens if n_tokens else 0.0
