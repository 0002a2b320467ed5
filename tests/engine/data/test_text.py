"""Byte-level text: lossless bytes, document boundaries, padding and packing."""

from __future__ import annotations

import numpy as np

from engine.config import ModelConfig
from engine.data import PAD_BYTE, DataOptions, load_data
from engine.data.text import chunk_document, pack_documents

CFG = ModelConfig(modality="text", num_classes=256, seq_len=8, d_model=16, n_layers=1, n_heads=2)


def test_chunk_pads_the_tail_with_newlines() -> None:
    rows = chunk_document(b"abcdefghij", 4)
    assert rows.shape == (3, 4)
    assert bytes(rows.reshape(-1)) == b"abcdefghij\n\n"
    assert PAD_BYTE == ord("\n")


def test_invalid_utf8_is_kept_losslessly_and_documents_never_share_a_row(tmp_path) -> None:
    a = "café crème, ".encode("latin-1") * 20 + b"\xff\xfe\x80"  # Latin-1: invalid UTF-8, printable
    b = "héllo wörld ✓".encode()
    (tmp_path / "a.txt").write_bytes(a)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_bytes(b)
    (tmp_path / "image.png").write_bytes(b"\x89PNG")  # not text: skipped
    (tmp_path / "z.txt").write_bytes(bytes(range(256)))  # NUL bytes: binary, whatever its name
    data = load_data(tmp_path, CFG, DataOptions(val_fraction=0.0))
    assert data.sources == ("a.txt", "sub/b.md")
    for g, doc in enumerate((a, b)):
        rows = data.tokens[data.groups == g]
        flat = bytes(rows.reshape(-1))
        assert flat[: len(doc)] == doc  # lossless, in order
        assert set(flat[len(doc) :]) <= {PAD_BYTE}  # only padding after the document
        assert len(flat) - len(doc) < CFG.seq_len


def test_pack_mode_joins_documents_with_a_blank_line() -> None:
    rows, first = pack_documents([b"abc", b"defgh", b"ij"], 4)
    assert bytes(rows.reshape(-1)) == b"abc\n\ndefgh\n\nij\n\n"
    assert first.tolist() == [0, 0, 1, 2]  # the document each row starts in


def test_single_file_split_holds_out_a_contiguous_tail(tmp_path) -> None:
    (tmp_path / "one.txt").write_bytes(b"abcdefgh" * 20)
    data = load_data(tmp_path / "one.txt", CFG, DataOptions(val_fraction=0.25))
    assert data.val_index.tolist() == list(range(15, 20))
    assert data.train_index.tolist() == list(range(15))
    assert isinstance(data.tokens, np.ndarray) and data.tokens.dtype == np.uint8
