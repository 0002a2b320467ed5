"""Trajectory files: lossless round trips, branching from a reloaded record, bad files refused."""

from __future__ import annotations

import errno
import json
import struct
from pathlib import Path

import pytest
import torch

import engine
from engine import SampleRequest, Trajectory, load_trajectory, sample, save_trajectory
from engine.files.atomic import DiskFullError, stale_temporaries
from engine.files.trajectory import (
    TrajectoryFileError,
    decode_tensors,
    encode_tensors,
    read_trajectory_header,
)

from ._tiny import tiny_image_model, tiny_text_model


def _fields_equal(a: Trajectory, b: Trajectory) -> None:
    va, vb = vars(a), vars(b)
    assert set(va) == set(vb)
    for name, value in va.items():
        other = vb[name]
        if name == "codec":
            assert (other.num_classes, other.ell, other.base) == (value.num_classes, value.ell, value.base)
        elif name == "events":
            assert len(value) == len(other)
            for (s1, i1, v1), (s2, i2, v2) in zip(value, other, strict=True):
                assert s1 == s2 and torch.equal(i1, i2) and torch.equal(v1, v2) and v1.dtype == v2.dtype
        elif isinstance(value, torch.Tensor):
            assert other.dtype == value.dtype and other.shape == value.shape, name
            if value.is_floating_point():  # NaN marks "not recorded": compare it as a value
                assert torch.equal(value.isnan(), other.isnan()), name
                value, other = value.nan_to_num(-7.0), other.nan_to_num(-7.0)
            assert torch.equal(other, value), name
        else:
            assert other == value and type(other) is type(value), name


def _run(model, **kw) -> Trajectory:
    request = SampleRequest(**{"num_samples": 3, "steps": 12, "seed": 5, "record_predictions": True, **kw})
    return sample(model, request).trajectory


@pytest.mark.parametrize(
    "options",
    [{}, {"corrector": 0.2, "reveal": "marginal"}, {"record_predictions": False, "steps": 300}],
)
def test_round_trip_is_lossless_at_every_step(tmp_path, options):
    traj = _run(tiny_image_model(), **options)
    if options.get("corrector"):
        assert traj.events, "the corrector test needs corrector events"
    path = save_trajectory(tmp_path / "a.trajectory.safetensors", traj, {"seed": 5, "note": "x"})
    back, settings = load_trajectory(path)
    assert settings == {"seed": 5, "note": "x"}
    _fields_equal(traj, back)
    for k in range(traj.steps_done + 1):
        assert torch.equal(back.state_at(k), traj.state_at(k)), k
        p, q = traj.prediction_at(k), back.prediction_at(k)
        assert (p is None and q is None) or torch.equal(p, q)
    assert back.nfe() == traj.nfe() and back.idle_steps() == traj.idle_steps()


def test_a_cancelled_text_run_round_trips(tmp_path):
    model = tiny_text_model()
    result = engine.sample(model, SampleRequest(num_samples=2, steps=40, seed=1), _cancel_after(7))
    traj = result.trajectory
    assert traj.steps_done < 40
    back, _ = load_trajectory(save_trajectory(tmp_path / "t.trajectory.safetensors", traj))
    _fields_equal(traj, back)
    assert torch.equal(back.state_at(back.steps_done), traj.state_at(traj.steps_done))


def _cancel_after(steps: int) -> engine.CancelToken:
    class After(engine.CancelToken):
        def __init__(self) -> None:
            super().__init__()
            self.checks = 0

        @property
        def cancelled(self) -> bool:
            self.checks += 1
            return self.checks > steps

    return After()


def test_branching_from_a_reloaded_record_equals_branching_from_the_original(tmp_path):
    model = tiny_image_model()
    request = SampleRequest(num_samples=2, steps=16, seed=3, record_predictions=True)
    traj = sample(model, request).trajectory
    back, _ = load_trajectory(save_trajectory(tmp_path / "b.trajectory.safetensors", traj))
    child_a = engine.branch(model, traj, 6, request.replace(seed=99)).trajectory
    child_b = engine.branch(model, back, 6, request.replace(seed=99)).trajectory
    for k in range(17):
        assert torch.equal(child_a.state_at(k), child_b.state_at(k))
    for k in range(7):
        assert torch.equal(child_b.state_at(k), traj.state_at(k))


def test_a_field_added_later_is_saved_without_changing_the_format(tmp_path):
    traj = _run(tiny_image_model())
    traj.confidence = torch.rand(traj.steps, traj.num_samples)  # e.g. a new per-step record
    traj.strategy = "confidence"
    traj.optional_extra = None
    back, _ = load_trajectory(save_trajectory(tmp_path / "c.trajectory.safetensors", traj))
    _fields_equal(traj, back)


def test_a_field_the_format_cannot_hold_is_refused():
    traj = _run(tiny_image_model())
    traj.something = object()
    with pytest.raises(TypeError, match="something"):
        traj.to_tensors()


def test_subset_keeps_one_sample_and_its_corrector_events():
    traj = _run(tiny_image_model(), corrector=0.3)
    assert traj.events
    for i in range(traj.num_samples):
        one = traj.subset([i])
        assert one.num_samples == 1
        for k in range(traj.steps_done + 1):
            assert torch.equal(one.state_at(k)[0], traj.state_at(k)[i]), (i, k)
        assert one.nfe() == [traj.nfe()[i]]
        assert torch.equal(one.prediction_at(3)[0], traj.prediction_at(3)[i])


def test_the_file_costs_o_of_sub_tokens(tmp_path):
    model = tiny_image_model()
    for steps in (8, 512):
        traj = _run(model, steps=steps, record_predictions=True)
        n, length, ell = traj.shape
        stored, encoding = encode_tensors(traj.to_tensors()[0], traj.steps)
        digits = stored["first_value"].nbytes + stored["reveal_step"].nbytes
        # a byte per value, one or two per reveal step (one while T < 256)
        assert digits <= n * length * ell * (2 if steps < 255 else 3)
        raw = traj.predictions.numel() * traj.predictions.element_size()
        kept = sum(t.nbytes for k, t in stored.items() if k.startswith("predictions"))
        if steps == 512:  # most steps change no prediction: only the changes are stored
            assert "predictions" in encoding["delta"] and kept < raw / 8, (kept, raw)
        back, _ = load_trajectory(save_trajectory(tmp_path / f"s{steps}.trajectory.safetensors", traj))
        _fields_equal(traj, back)


def test_hostile_encodings_are_refused(tmp_path):
    path = save_trajectory(tmp_path / "h.trajectory.safetensors", _run(tiny_image_model(), steps=300), {})
    meta = json.loads(engine.files.modelfile.read_safetensors_metadata(path)[0]["trajectory"])
    assert "predictions" in meta["encoding"]["delta"]

    def bomb(header):
        m = json.loads(header["__metadata__"]["trajectory"])
        m["encoding"]["delta"]["predictions"]["shape"] = [300, 10**6, 10**6]
        header["__metadata__"]["trajectory"] = json.dumps(m)

    _rewrite_header(path, bomb)
    with pytest.raises(TrajectoryFileError, match="shape"):
        load_trajectory(path)
    for name, value in (("predictions.where", -5), ("predictions.where", 10**9)):
        traj = _run(tiny_image_model(), steps=300)
        stored, encoding = encode_tensors(traj.to_tensors()[0], traj.steps)
        stored[name] = stored[name].long()
        stored[name][0] = value
        limit = (traj.steps + 1) * traj.first_value.numel()
        with pytest.raises(ValueError, match="out of"):
            decode_tensors(stored, encoding, traj.steps, limit)


# --------------------------------------------------------------------------- bad files


def _saved(tmp_path, name="g.trajectory.safetensors", **options):
    return save_trajectory(tmp_path / name, _run(tiny_image_model(), **options), {"a": 1})


def test_every_truncation_is_a_clear_error(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    cuts = sorted({0, 1, 7, 8, 9, 20, len(data) // 3, len(data) // 2, len(data) - 9, len(data) - 1})
    for cut in cuts:
        bad = tmp_path / f"cut{cut}.trajectory.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(TrajectoryFileError, match=f"cut{cut}") as caught:
            load_trajectory(bad)
        assert "truncated" in str(caught.value) or "not a" in str(caught.value), cut


def test_foreign_files_are_refused_by_name(tmp_path):
    model_file = engine.save_model(tmp_path / "m.safetensors", tiny_image_model())
    with pytest.raises(TrajectoryFileError, match="not a Prime Studio trajectory file"):
        load_trajectory(model_file)
    noise = tmp_path / "noise.trajectory.safetensors"
    noise.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(TrajectoryFileError, match="noise"):
        load_trajectory(noise)
    png = tmp_path / "p.trajectory.safetensors"
    from PIL import Image

    Image.new("RGB", (4, 4)).save(png, format="PNG")
    with pytest.raises(TrajectoryFileError):
        load_trajectory(png)
    with pytest.raises(TrajectoryFileError, match="no such file"):
        load_trajectory(tmp_path / "missing.trajectory.safetensors")
    with pytest.raises(TrajectoryFileError, match="not a file"):
        load_trajectory(tmp_path)


def _rewrite_header(path, edit):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def test_a_header_claiming_huge_tensors_is_refused_before_reading(tmp_path):
    path = _saved(tmp_path)

    def huge(header):
        header["first_value"]["shape"] = [10**9, 10**6, 2]

    _rewrite_header(path, huge)
    with pytest.raises(TrajectoryFileError, match="byte range"):
        load_trajectory(path)


def test_wrong_version_and_hostile_metadata_are_refused(tmp_path):
    path = _saved(tmp_path)

    def version(header):
        header["__metadata__"]["format_version"] = "99"

    _rewrite_header(path, version)
    with pytest.raises(TrajectoryFileError, match="format_version '99'"):
        load_trajectory(path)
    for key, value, message in (
        ("steps_done", 10**6, "steps_done"),
        ("state_at", 1, "cannot hold"),
        ("steps", 3, "steps"),
    ):
        path = _saved(tmp_path, f"{key}.trajectory.safetensors")

        def edit(header, key=key, value=value):
            meta = json.loads(header["__metadata__"]["trajectory"])
            meta["scalars"][key] = value
            header["__metadata__"]["trajectory"] = json.dumps(meta)

        _rewrite_header(path, edit)
        with pytest.raises(TrajectoryFileError, match=message):
            load_trajectory(path)


def test_out_of_range_digits_are_refused(tmp_path):
    traj = _run(tiny_image_model())
    traj.first_value[0, 0, 0] = 200  # beyond the mask symbol
    with pytest.raises(TrajectoryFileError, match="digits outside"):
        load_trajectory(save_trajectory(tmp_path / "d.trajectory.safetensors", traj))


def test_the_header_reads_without_tensors(tmp_path):
    path = _saved(tmp_path)
    meta, settings = read_trajectory_header(path)
    assert settings == {"a": 1} and meta["scalars"]["steps"] == 12


def test_a_full_disk_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = _saved(tmp_path)
    before = path.read_bytes()

    real_write = Path.write_bytes

    def full(self, data):  # the temporary file fills the disk after 100 bytes
        real_write(self, data[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(DiskFullError, match="disk is full"):
        save_trajectory(path, _run(tiny_image_model(), steps=30), {})
    assert path.read_bytes() == before and not stale_temporaries(path)
    with pytest.raises(DiskFullError):
        save_trajectory(tmp_path / "new.trajectory.safetensors", _run(tiny_image_model()), {})
    assert not (tmp_path / "new.trajectory.safetensors").exists()
