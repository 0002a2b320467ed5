"""Model files: round trip, metadata-only reads, every bad-file case, atomic writes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine import ModelConfig, PrimeModel
from engine.files.modelfile import (
    FORMAT_TAG,
    ModelFileError,
    atomic_write_safetensors,
    load_model,
    read_model_info,
    read_safetensors,
    save_model,
)

REPO = Path(__file__).resolve().parents[2]


def tiny_model(ell: int = 2, seed: int = 0) -> PrimeModel:
    cfg = ModelConfig(
        modality="image",
        num_classes=16,
        ell=ell,
        height=4,
        width=4,
        channels=1,
        d_model=16,
        n_layers=1,
        n_heads=2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PrimeModel(cfg)


def random_digits(model: PrimeModel, n: int = 3, seed: int = 1) -> torch.Tensor:
    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(
        0, cfg.base + 1, (n, cfg.seq_length, cfg.ell), generator=gen
    )  # (N, L, ell), incl. mask


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, PrimeModel]:
    model = tiny_model()
    path = tmp_path / "tiny.safetensors"
    save_model(
        path, model, {"dataset": "unit-test", "steps": 7, "metrics": {"bound_bpd": 1.5, "how": "none"}}
    )
    return path, model


def rewrite(path: Path, *, tensors: dict | None = None, **metadata_changes: str | None) -> Path:
    """Rewrite a model file with changed tensors and/or metadata (None deletes a key)."""
    old_tensors, metadata = read_safetensors(path)
    if tensors is not None:  # new weights: the stored digest no longer applies (an older-style file)
        metadata.pop("weights_digest", None)
    for key, value in metadata_changes.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    out = path.with_name("edited.safetensors")
    save_file(old_tensors if tensors is None else tensors, str(out), metadata=metadata)
    return out


# --------------------------------------------------------------------------- round trip


def test_round_trip_gives_identical_logits(saved: tuple[Path, PrimeModel]) -> None:
    path, model = saved
    loaded, info = load_model(path)
    y = random_digits(model)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(y), loaded(y))
    assert not loaded.training
    assert info.config == model.config
    assert info.num_parameters == model.num_parameters()
    assert info.file_size == path.stat().st_size
    assert info.format_version == "1"
    assert info.name == "tiny"


def test_card_is_kept_and_completed(saved: tuple[Path, PrimeModel]) -> None:
    path, _ = saved
    info = read_model_info(path)
    assert info.card["dataset"] == "unit-test"
    assert info.card["steps"] == 7
    assert info.card["metrics"] == {"bound_bpd": 1.5, "how": "none"}
    assert re.match(r"\d{4}-\d\d-\d\dT", info.card["created"])
    assert info.card["app_version"]
    assert json.loads(json.dumps(info.to_dict()))["config"]["ell"] == 2


def test_metadata_tags(saved: tuple[Path, PrimeModel]) -> None:
    path, model = saved
    _, metadata = read_safetensors(path)
    assert metadata["format"] == FORMAT_TAG == "prime-studio-model"
    assert metadata["format_version"] == "1"
    assert ModelConfig.from_dict(json.loads(metadata["config"])) == model.config


def test_permutation_travels_with_the_model(tmp_path: Path) -> None:
    perm = tuple(reversed(range(16)))
    cfg = tiny_model().config.replace(permutation=perm)
    model = PrimeModel(cfg)
    save_model(tmp_path / "p.safetensors", model)
    loaded, info = load_model(tmp_path / "p.safetensors")
    assert info.config.permutation == perm
    assert loaded.codec.permutation is not None


def test_read_model_info_does_not_read_weights(saved: tuple[Path, PrimeModel]) -> None:
    path, model = saved
    tensors, _ = read_safetensors(path)
    tensors["head.bias"] = torch.full_like(tensors["head.bias"], float("nan"))
    bad = rewrite(path, tensors=tensors)
    assert read_model_info(bad).config == model.config  # header only: fine
    with pytest.raises(ModelFileError, match="head.bias"):
        load_model(bad)


def test_card_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="JSON"):
        save_model(tmp_path / "x.safetensors", tiny_model(), {"bad": object()})
    with pytest.raises(ValueError, match="JSON"):
        save_model(tmp_path / "x.safetensors", tiny_model(), {"loss": float("nan")})
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- bad files


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such file"):
        read_model_info(tmp_path / "nope.safetensors")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not a file"):
        load_model(tmp_path)


@pytest.mark.parametrize("blob", [b"", b"hello, not a model", b"\x00" * 7, b"\xff" * 64])
def test_not_safetensors(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(blob)
    with pytest.raises(ModelFileError, match="not a safetensors file") as err:
        read_model_info(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated(saved: tuple[Path, PrimeModel], keep: float) -> None:
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(path)
    with pytest.raises(ModelFileError, match="truncated"):
        read_model_info(path)


def test_plain_safetensors_without_tag(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ModelFileError, match="not a Prime Studio model"):
        read_model_info(path)


def test_wrong_format_tag(saved: tuple[Path, PrimeModel]) -> None:
    with pytest.raises(ModelFileError, match="'some-other-format'"):
        read_model_info(rewrite(saved[0], format="some-other-format"))


@pytest.mark.parametrize("version", ["2", "0", None])
def test_unsupported_version(saved: tuple[Path, PrimeModel], version: str | None) -> None:
    with pytest.raises(ModelFileError, match="unsupported format_version"):
        read_model_info(rewrite(saved[0], format_version=version))


def test_config_not_json(saved: tuple[Path, PrimeModel]) -> None:
    with pytest.raises(ModelFileError, match="'config' is not valid JSON"):
        read_model_info(rewrite(saved[0], config="{modality: image"))


def test_config_missing(saved: tuple[Path, PrimeModel]) -> None:
    with pytest.raises(ModelFileError, match="no 'config'"):
        read_model_info(rewrite(saved[0], config=None))


def test_card_not_json(saved: tuple[Path, PrimeModel]) -> None:
    with pytest.raises(ModelFileError, match="'card' is not valid JSON"):
        read_model_info(rewrite(saved[0], card="[1, 2"))
    with pytest.raises(ModelFileError, match="card must be a JSON object"):
        read_model_info(rewrite(saved[0], card="[1, 2]"))


def test_unknown_config_keys_are_named(saved: tuple[Path, PrimeModel]) -> None:
    cfg = saved[1].config.to_dict() | {"flux_capacitor": 1, "warp": 2}
    with pytest.raises(ModelFileError, match="flux_capacitor, warp"):
        read_model_info(rewrite(saved[0], config=json.dumps(cfg)))


def test_invalid_config_value(saved: tuple[Path, PrimeModel]) -> None:
    cfg = saved[1].config.to_dict() | {"d_model": 15}
    with pytest.raises(ModelFileError, match="invalid model config.*d_model=15"):
        read_model_info(rewrite(saved[0], config=json.dumps(cfg)))


def test_missing_tensor_is_named(saved: tuple[Path, PrimeModel]) -> None:
    tensors, _ = read_safetensors(saved[0])
    del tensors["head.weight"]
    with pytest.raises(ModelFileError, match=r"missing tensors: head\.weight"):
        load_model(rewrite(saved[0], tensors=tensors))


def test_extra_tensor_is_named(saved: tuple[Path, PrimeModel]) -> None:
    tensors, _ = read_safetensors(saved[0])
    tensors["surprise.weight"] = torch.zeros(3)
    with pytest.raises(ModelFileError, match=r"unexpected tensors: surprise\.weight"):
        load_model(rewrite(saved[0], tensors=tensors))


def test_misshaped_tensor_is_named(saved: tuple[Path, PrimeModel]) -> None:
    tensors, _ = read_safetensors(saved[0])
    tensors["head.weight"] = torch.zeros(3, 16)
    with pytest.raises(
        ModelFileError, match=r"mis-shaped tensors: head\.weight \(3, 16\) \(expected \(16, 16\)\)"
    ):
        load_model(rewrite(saved[0], tensors=tensors))


def test_weights_of_another_config(saved: tuple[Path, PrimeModel]) -> None:
    """Weights of an ell=1 model under the ell=2 config: the embedding shapes differ."""
    path, model = saved
    other = tiny_model(ell=1)
    save_model(path.with_name("other.safetensors"), other)
    tensors, _ = read_safetensors(path.with_name("other.safetensors"))
    with pytest.raises(ModelFileError, match="do not match the config"):
        load_model(rewrite(path, tensors=tensors))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_named(saved: tuple[Path, PrimeModel], value: float) -> None:
    tensors, _ = read_safetensors(saved[0])
    tensors["head.weight"][0, 0] = value
    with pytest.raises(ModelFileError, match=r"non-finite .* head\.weight"):
        load_model(rewrite(saved[0], tensors=tensors))


def test_model_file_error_is_a_value_error() -> None:
    assert issubclass(ModelFileError, ValueError)


# --------------------------------------------------------------------------- generic files and atomicity


def test_generic_round_trip_with_shared_storage(tmp_path: Path) -> None:
    base = torch.arange(12.0).reshape(3, 4)
    tensors = {"a": base, "view": base[1], "tied": base, "step": torch.tensor(5)}
    path = atomic_write_safetensors(
        tmp_path / "sub" / "state.safetensors", tensors, {"kind": "train", "n": "3"}
    )
    loaded, metadata = read_safetensors(path)
    assert metadata == {"kind": "train", "n": "3"}
    assert set(loaded) == {"a", "view", "tied", "step"}
    assert torch.equal(loaded["view"], base[1]) and torch.equal(loaded["tied"], base)
    assert int(loaded["step"]) == 5


def test_metadata_must_be_strings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="str to str"):
        atomic_write_safetensors(tmp_path / "x.safetensors", {"a": torch.zeros(1)}, {"n": 3})  # type: ignore[dict-item]
    assert not list(tmp_path.iterdir())


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failure_mid_write_leaves_old_file_and_no_partial(
    saved: tuple[Path, PrimeModel], monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    """The writer dies after writing part of the data: the previous file survives, no temp file stays."""
    path, model = saved
    before = path.read_bytes()

    real_write = Path.write_bytes

    def partial_then_fail(self: Path, data: bytes) -> int:
        real_write(self, data[:20])
        raise failure

    monkeypatch.setattr(Path, "write_bytes", partial_then_fail)
    with pytest.raises(type(failure)):
        save_model(path, tiny_model(seed=5))
    assert path.read_bytes() == before
    assert _leftovers(path.parent) == []
    monkeypatch.undo()
    loaded, _ = load_model(path)  # still the old, valid model
    y = random_digits(model)
    with torch.no_grad():
        assert torch.equal(loaded(y), model.eval()(y))


def test_failure_before_rename_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    target = tmp_path / "new.safetensors"
    with pytest.raises(OSError, match="Input/output"):
        save_model(target, tiny_model())
    monkeypatch.undo()
    assert not target.exists()
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_whole_file(saved: tuple[Path, PrimeModel]) -> None:
    path, _ = saved
    other = tiny_model(seed=3)
    save_model(path, other, {"dataset": "second"})
    loaded, info = load_model(path)
    assert info.card["dataset"] == "second"
    y = random_digits(other)
    with torch.no_grad():
        assert torch.equal(loaded(y), other.eval()(y))
    assert _leftovers(path.parent) == []


# --------------------------------------------------------------------------- no pickle anywhere


def test_no_pickle_or_torch_load_in_the_project() -> None:
    pattern = re.compile(
        r"^\s*(import pickle|from pickle|import dill|import cloudpickle)|torch\.load\(|pickle\.loads?\(", re.M
    )
    offenders = []
    for folder in ("engine", "studio"):
        for source in (REPO / folder).rglob("*.py"):
            if pattern.search(source.read_text(encoding="utf-8")):
                offenders.append(str(source.relative_to(REPO)))
    assert offenders == []


def test_integer_tensor_in_place_of_weights_is_named(saved: tuple[Path, PrimeModel]) -> None:
    tensors, _ = read_safetensors(saved[0])
    tensors["head.bias"] = torch.zeros(16, dtype=torch.int64)
    with pytest.raises(ModelFileError, match=r"wrong tensor types: head\.bias torch\.int64"):
        load_model(rewrite(saved[0], tensors=tensors))


def test_half_precision_weights_load_as_float32(saved: tuple[Path, PrimeModel]) -> None:
    path, model = saved
    tensors, _ = read_safetensors(path)
    halved = {k: v.to(torch.bfloat16) for k, v in tensors.items()}
    loaded, _ = load_model(rewrite(path, tensors=halved))
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert torch.equal(loaded.head.weight, tensors["head.weight"].to(torch.bfloat16).float())


def test_saved_files_get_ordinary_permissions(tmp_path: Path) -> None:
    """Not mkstemp's 0600: the mode a plain open() gives under the current umask."""
    old = os.umask(0o022)
    try:
        path = save_model(tmp_path / "m.safetensors", tiny_model())
        assert path.stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        other = atomic_write_safetensors(tmp_path / "s.safetensors", {"a": torch.zeros(1)}, {})
        assert other.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
