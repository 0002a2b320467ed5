"""What the studio takes from files it did not write (issue 17, items 9 and 10).

PNG settings are read from the text chunks alone (no pixel is decoded), bounded, only from regular
files, and every value is checked before any is applied; a PNG never makes the studio load a model
file by path. Model cards are shown as text, never as markup.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from studio.history import store
from studio.library import card_html


def chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_file(
    path: Path, text_chunks: list[bytes], width: int = 2, height: int = 2, idat: bytes | None = None
) -> Path:
    """A PNG made chunk by chunk: IHDR (grey, 8 bit), the given text chunks, IDAT, IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    if idat is None:
        idat = zlib.compress(b"".join(b"\0" + b"\x80" * width for _ in range(height)))
    body = chunk(b"IHDR", ihdr) + b"".join(text_chunks) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path.write_bytes(store.PNG_SIGNATURE + body)
    return path


def text(key: str, value: str) -> bytes:
    return chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))


def ztext(key: str, raw: bytes) -> bytes:
    return chunk(b"zTXt", key.encode() + b"\0\0" + zlib.compress(raw, 9))


def itext(key: str, raw: bytes, compressed: bool = True) -> bytes:
    body = zlib.compress(raw, 9) if compressed else raw
    return chunk(b"iTXt", key.encode() + b"\0" + (b"\1\0" if compressed else b"\0\0") + b"\0\0" + body)


GOOD = {"model": "digits-prime", "seed": 7, "steps": 32, "temperature": 0.9, "top_k": 0, "reveal": "joint"}


def test_a_studio_png_round_trips(tmp_path: Path) -> None:
    path = store.save_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8), GOOD)
    assert store.read_png_settings(path) == GOOD


def test_text_in_every_chunk_kind_is_read(tmp_path: Path) -> None:
    blob = json.dumps(GOOD).encode()
    for i, kind in enumerate(
        (text("prime-settings", blob.decode()), ztext("prime-settings", blob), itext("prime-settings", blob))
    ):
        assert store.read_png_settings(png_file(tmp_path / f"{i}.png", [kind])) == GOOD


@pytest.mark.parametrize("payload", ["[1, 2, 3]", "17", '"text"', "null", "{not json"])
def test_settings_that_are_not_an_object_fall_back_to_the_plain_chunks(tmp_path: Path, payload: str) -> None:
    path = png_file(
        tmp_path / "x.png", [text("prime-settings", payload), text("steps", "12"), text("seed", "3")]
    )
    assert store.read_png_settings(path) == {"steps": 12, "seed": 3}
    bare = png_file(tmp_path / "y.png", [text("prime-settings", payload)])
    with pytest.raises(ValueError, match="carries no Prime Studio settings"):
        store.read_png_settings(bare)


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deep_json_is_refused_without_a_recursion_error(tmp_path: Path, depth: int) -> None:
    nested = '{"a": ' * depth + "1" + "}" * depth
    path = png_file(tmp_path / "deep.png", [text("prime-settings", nested)])
    with pytest.raises(ValueError, match="no Prime Studio settings"):
        store.read_png_settings(path)


def test_a_decompression_bomb_is_refused(tmp_path: Path) -> None:
    bomb = b"0" * (200 * 10**6)  # 200 MB of text in a ~200 KB chunk
    for kind in (ztext, itext):
        path = png_file(tmp_path / "bomb.png", [kind("prime-settings", bomb)])
        assert path.stat().st_size < 1_000_000
        started = time.perf_counter()
        with pytest.raises(ValueError, match="expands beyond"):
            store.read_png_settings(path)
        assert time.perf_counter() - started < 2


def test_a_huge_png_is_read_without_decoding_its_pixels(tmp_path: Path) -> None:
    """12000 x 12000 by its header; the pixel data (not even valid) is skipped, not decoded."""
    path = png_file(
        tmp_path / "huge.png",
        [text("prime-settings", json.dumps(GOOD))],
        12000,
        12000,
        idat=os.urandom(8_000_000),
    )
    started = time.perf_counter()
    assert store.read_png_settings(path) == GOOD
    assert time.perf_counter() - started < 0.5


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    started = time.perf_counter()
    with pytest.raises(ValueError, match="not a regular file"):
        store.read_png_settings(fifo)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    ("key", "value"),
    [("steps", 1e30), ("steps", -1), ("steps", 2.5), ("seed", "x"), ("temperature", float("nan")),
     ("top_p", 7), ("num_samples", True), ("model", ["a"]), ("steps", "1e999")],
)  # fmt: skip
def test_every_value_is_checked_before_any_is_applied(tmp_path: Path, key: str, value: object) -> None:
    settings = dict(GOOD, **{key: value})
    path = png_file(tmp_path / "v.png", [text("prime-settings", json.dumps(settings))])
    with pytest.raises(ValueError, match=f"{key}.*no setting was applied"):
        store.read_png_settings(path)


def test_plain_chunks_are_checked_too(tmp_path: Path) -> None:
    path = png_file(tmp_path / "p.png", [text("steps", "1e30"), text("seed", "1")])
    with pytest.raises(ValueError, match="steps"):
        store.read_png_settings(path)


@pytest.mark.parametrize(
    ("name", "ok"),
    [("digits-prime", True), ("my model.v2", True), ("/tmp/evil.safetensors", False), ("../x", False),
     ("evil.safetensors", False), ("C:\\x", False), (".hidden", False), ("", False), (3, False),
     ("a\x1b", False)],
)  # fmt: skip
def test_only_library_names_may_be_loaded_from_a_png(name: object, ok: bool) -> None:
    assert store.is_library_name(name) is ok


def test_card_keys_and_values_are_escaped() -> None:
    card = {
        '<img src="/dev/zero">': "<b>bold</b> & more",
        "metrics": {"<script>": "<i>x</i>"},
        "list": ["<a href='x'>"],
        "value": float("nan"),
    }
    html = card_html("<h1>name</h1>", {"modality": "<image>", "ell": 2}, card, False)
    assert "<img" not in html and "<script>" not in html and "<b>bold" not in html and "<h1>" not in html
    assert "&lt;img src=&quot;/dev/zero&quot;&gt;" in html and "&lt;b&gt;bold&lt;/b&gt; &amp; more" in html
    assert "&lt;h1&gt;name" in html
    error = card_html("<x>", None, None, False, error="<bad> file")
    assert "&lt;bad&gt;" in error and "<bad>" not in error and "&lt;x&gt;" in error
