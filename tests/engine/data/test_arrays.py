"""Image arrays: .npy, .npz and IDX files, good and hostile, checked before anything is allocated."""

from __future__ import annotations

import gzip
import struct
import time
import tracemalloc

import numpy as np
import pytest

from engine.config import ModelConfig
from engine.data import DataOptions, load_data, preflight
from engine.data.arrays import read_arrays

IMG = ModelConfig(modality="image", num_classes=256, height=6, width=5, channels=1, d_model=16, n_heads=2)


def idx_bytes(arr: np.ndarray, type_code: int = 8) -> bytes:
    """An IDX file (MNIST format) of ``arr``."""
    head = bytes([0, 0, type_code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.astype(">u1" if type_code == 8 else arr.dtype.newbyteorder(">")).tobytes()


def images(n: int = 7, h: int = 6, w: int = 5, seed: int = 0, c: int | None = None) -> np.ndarray:
    shape = (n, h, w) if c is None else (n, h, w, c)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _reasons(tmp_path) -> dict[str, tuple[str, str]]:
    report = preflight(tmp_path, IMG)
    return {s.path: (s.reason, s.detail) for s in report.skipped}


def test_idx_plain_and_gzipped_give_the_same_items(tmp_path) -> None:
    arr = images()
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "train-images-idx3-ubyte").write_bytes(idx_bytes(arr))
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(arr)))
    (tmp_path / "gz" / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.arange(7, dtype=np.uint8)))
    )
    opt = DataOptions(val_fraction=0.0)
    a = load_data(tmp_path / "plain", IMG, opt)
    b = load_data(tmp_path / "gz", IMG, opt)
    assert np.array_equal(a.tokens, arr.reshape(7, 30)) and np.array_equal(b.tokens, a.tokens)
    report = preflight(tmp_path / "gz", IMG)
    assert [(s.path, s.reason) for s in report.skipped] == [
        ("train-labels-idx1-ubyte.gz", "labels, not images")
    ]
    assert report.preview_sources[0] == "train-images-idx3-ubyte.gz[0]"


def test_npy_and_npz_with_channels_alpha_and_resizing(tmp_path) -> None:
    np.save(tmp_path / "grey.npy", images(4))
    rgba = images(3, 12, 10, seed=1, c=4)
    rgba[..., 3] = 0  # fully transparent: composited onto the background
    np.savez_compressed(tmp_path / "set.npz", x=rgba, y=np.arange(3))
    report = preflight(tmp_path, IMG, DataOptions(background="#808080", val_fraction=0.0))
    assert report.ok and report.items == 7 and report.files_used == 2
    assert [(s.path, s.reason) for s in report.skipped] == [("set.npz:y", "wrong data type")]
    data = report.data
    assert np.array_equal(data.tokens[:4], images(4).reshape(4, 30))
    assert (data.tokens[4:] == 128).all()  # grey background, alpha 0 everywhere
    assert data.sources[4] == "set.npz:x[0]"
    assert "3 of 7 images have an alpha channel" in report.stats["transparency"]


def test_bad_arrays_are_skipped_with_a_reason(tmp_path) -> None:
    good = images()
    np.save(tmp_path / "floats.npy", good.astype(np.float32))
    np.save(tmp_path / "flat2d.npy", good[0])
    np.save(tmp_path / "ragged.npy", np.array([good[0], good[0, :3]], dtype=object), allow_pickle=True)
    np.save(tmp_path / "cut.npy", good)
    raw = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[:-10])
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY\x01\x00\xff\xffnot a header")
    (tmp_path / "cut-idx3-ubyte").write_bytes(idx_bytes(good)[:-1])
    (tmp_path / "long-idx3-ubyte").write_bytes(idx_bytes(good) + b"xx")
    (tmp_path / "float-idx3-ubyte").write_bytes(idx_bytes(good.astype(np.float32), type_code=13))
    (tmp_path / "cut-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(good))[:-20])
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    np.save(tmp_path / "ok.npy", good)
    reasons = _reasons(tmp_path)
    assert reasons["floats.npy"][0] == "wrong data type" and "float32" in reasons["floats.npy"][1]
    assert reasons["flat2d.npy"][0] == "wrong shape" and "6 x 5" in reasons["flat2d.npy"][1]
    assert reasons["ragged.npy"][0] == "wrong data type" and "never unpickled" in reasons["ragged.npy"][1]
    assert reasons["cut.npy"][0] == "truncated"
    assert reasons["junk.npy"][0] == "corrupt"
    assert reasons["cut-idx3-ubyte"][0] == "truncated"
    assert reasons["long-idx3-ubyte"] == ("corrupt", "2 bytes after the image data")
    assert reasons["float-idx3-ubyte"][0] == "wrong data type"
    assert reasons["cut-idx3-ubyte.gz"][0] == "truncated"
    assert reasons["bad.npz"][0] == "corrupt"
    report = preflight(tmp_path, IMG)
    assert report.ok and report.items == 7 and report.files_used == 1


def test_huge_headers_are_refused_before_allocating(tmp_path) -> None:
    # IDX and .npy headers that claim 10**15 bytes; the files themselves are tiny
    (tmp_path / "huge-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", 10**5, 10**5, 10**5))
    (tmp_path / "huge-idx3-ubyte.gz").write_bytes(
        gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">III", 60000, 28, 28) + b"\0" * 100)
    )
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (100000, 100000, 100000), }"
    header += " " * (63 - len(header) % 64) + "\n"
    (tmp_path / "huge.npy").write_bytes(
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
    )
    tracemalloc.start()
    t0 = time.perf_counter()
    reasons = _reasons(tmp_path)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert reasons["huge-idx3-ubyte"][0] == "too large" and reasons["huge.npy"][0] == "too large"
    assert reasons["huge-idx3-ubyte.gz"][0] == "truncated"  # 47 MB announced, 100 bytes there
    assert seconds < 5 and peak < 64 * 2**20


def test_read_arrays_reads_npy_and_fortran_order(tmp_path) -> None:
    want = images(3, c=3)
    np.save(tmp_path / "a.npy", want)
    np.save(tmp_path / "f.npy", np.asfortranarray(want))
    for name in ("a.npy", "f.npy"):
        (arr,), left = read_arrays(tmp_path / name, name, 10**6)
        assert np.array_equal(arr.images, want) and left == []


@pytest.mark.parametrize("channels", [1, 3])
def test_grey_and_rgb_arrays_fill_either_model(tmp_path, channels: int) -> None:
    np.save(tmp_path / "rgb.npy", images(2, c=3))
    cfg = IMG.replace(channels=channels)
    data = load_data(tmp_path, cfg, DataOptions(val_fraction=0.0))
    assert data.tokens.shape == (2, 30 * channels)
