r"""Text: documents (files) -> fixed-length sequences of tokens.

Tokens are bytes (C = 256) or ids of a learned BPE vocabulary (:mod:`engine.tokenizer`); either
way any file, valid UTF-8 or not, round-trips losslessly. The padding below is the newline byte,
or the vocabulary's newline token.

Two ways to cut documents into sequences of ``seq_len`` bytes (``text_mode``):

- ``"pad"`` (default): every sequence starts at a document start or a multiple of ``seq_len``
  into it, so a sequence never spans two documents; a document's short tail is padded with
  newline bytes (``b"\\n"``, 0x0A). Newline is chosen because it is valid UTF-8 that renders as
  blank lines, is already the most common "end of text" byte in .txt/.md files, and keeps every
  generated sample decodable; a zero byte would show as garbage. The model therefore learns that
  text may end in a run of blank lines.
- ``"pack"``: documents are joined with a blank line (``b"\\n\\n"``) between them and the stream is
  cut every ``seq_len`` bytes; the last partial sequence is padded with newlines. No padding is
  wasted on short documents, but sequences can start mid-document and span two documents. Use
  it for folders of many short files.
"""

from __future__ import annotations

import numpy as np

from engine.tokenizer import BYTES, Tokenizer

TEXT_MODES = ("pad", "pack")
PAD_BYTE = 0x0A  # b"\n"
SEPARATOR = b"\n\n"


def chunk_document(data: bytes, seq_len: int) -> np.ndarray:
    """One document -> (ceil(len / seq_len), seq_len) uint8, the tail padded with newlines."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    n = -(-len(data) // seq_len)
    buf = np.full(n * seq_len, PAD_BYTE, dtype=np.uint8)
    buf[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return buf.reshape(n, seq_len)  # (n, seq_len)


def pack_documents(docs: list[bytes], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Join documents with a blank line and cut: ((n, seq_len) uint8, (n,) index of each row's first doc)."""
    stream = SEPARATOR.join(docs)
    rows = chunk_document(stream, seq_len)
    starts = np.cumsum([0] + [len(d) + len(SEPARATOR) for d in docs[:-1]])  # byte offset of each doc
    first_doc = np.searchsorted(starts, np.arange(len(rows)) * seq_len, side="right") - 1
    return rows, first_doc.astype(np.int64)


def chunk_ids(ids: np.ndarray, seq_len: int, pad_id: int, dtype: type = np.uint16) -> np.ndarray:
    """One tokenized document -> (ceil(n / seq_len), seq_len) ids, the tail padded with ``pad_id``."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    n = -(-len(ids) // seq_len)
    buf = np.full(n * seq_len, pad_id, dtype=dtype)
    buf[: len(ids)] = ids
    return buf.reshape(n, seq_len)


def pack_ids(
    docs: list[np.ndarray], seq_len: int, pad_id: int, separator: np.ndarray, dtype: type = np.uint16
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pack_documents` for tokenized documents (``separator``: the ids of a blank line)."""
    pieces: list[np.ndarray] = []
    for k, d in enumerate(docs):
        if k:
            pieces.append(separator)
        pieces.append(d)
    stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    rows = chunk_ids(stream, seq_len, pad_id, dtype)
    starts = np.cumsum([0] + [len(d) + len(separator) for d in docs[:-1]])
    first_doc = np.searchsorted(starts, np.arange(len(rows)) * seq_len, side="right") - 1
    return rows, first_doc.astype(np.int64)


def is_valid_utf8(data: bytes) -> bool:
    """True when ``data`` decodes as UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def tokens_to_str(tokens: np.ndarray, tokenizer: Tokenizer = BYTES, boundaries: bool = False) -> str:
    """Preview text of tokens (invalid UTF-8 shown as U+FFFD; the tokens keep the bytes).

    ``boundaries``: a BPE preview with a ``|`` between tokens, so a reader sees how text was cut.
    """
    ids = np.asarray(tokens).astype(np.int64).tolist()
    if boundaries and tokenizer.kind != "bytes":
        return "|".join(tokenizer.token_bytes(i).decode("utf-8", errors="replace") for i in ids)
    return tokenizer.decode(ids).decode("utf-8", errors="replace")
