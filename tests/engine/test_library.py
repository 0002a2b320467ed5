"""The model library: data folders, listing (broken files included), resolve, import, remove, trash."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from engine import ModelConfig, PrimeModel
from engine.files import library as lib
from engine.files.modelfile import ModelFileError, save_model


def tiny_model(seed: int = 0) -> PrimeModel:
    cfg = ModelConfig(modality="text", num_classes=256, ell=2, seq_len=8, d_model=16, n_layers=1, n_heads=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PrimeModel(cfg)


@pytest.fixture
def bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bundled-models folder with one valid model (stands in for assets/models)."""
    folder = tmp_path / "assets" / "models"
    folder.mkdir(parents=True)
    save_model(folder / "demo-text.safetensors", tiny_model(), {"dataset": "bundled"})
    monkeypatch.setattr(lib, "bundled_models_dir", lambda: folder)
    return folder


# --------------------------------------------------------------------------- folders


def test_data_dir_override(prime_home: Path) -> None:
    assert lib.data_dir() == Path(prime_home)
    assert lib.user_models_dir() == Path(prime_home) / "models"
    assert lib.user_models_dir().is_dir()


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"XDG_DATA_HOME": "/xdg"}, "/xdg/prime-studio"),
        ("linux", {}, "{home}/.local/share/prime-studio"),
        ("darwin", {}, "{home}/Library/Application Support/Prime Studio"),
        ("win32", {"APPDATA": "/appdata"}, "/appdata/Prime Studio"),
    ],
)
def test_platform_data_dirs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, platform: str, env: dict[str, str], expected: str
) -> None:
    monkeypatch.delenv("PRIME_STUDIO_HOME")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("APPDATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "platform", platform)
    assert lib.data_dir() == Path(expected.format(home=tmp_path))


def test_bundled_dir_is_the_assets_folder_from_a_source_tree() -> None:
    repo = Path(__file__).resolve().parents[2]
    found = lib.bundled_models_dir()
    # from a source checkout (plain or editable install) this is the repository's assets/models
    assert found.parts[-1] == "models"
    assert found == repo / "assets" / "models" or found.parent.name == "prime_assets"


# --------------------------------------------------------------------------- listing and resolving


def test_empty_library() -> None:
    assert [e for e in lib.list_models() if not e.bundled] == []


def test_lists_bundled_then_user_and_survives_broken_files(bundled: Path) -> None:
    user = lib.user_models_dir()
    save_model(user / "mine.safetensors", tiny_model(seed=1))
    (user / "broken.safetensors").write_bytes(b"definitely not safetensors")
    (user / "notes.txt").write_text("ignored: not a model file")
    entries = lib.list_models()
    assert [(e.name, e.bundled) for e in entries] == [
        ("demo-text", True),
        ("broken", False),
        ("mine", False),
    ]
    good = {e.name: e for e in entries}
    assert good["demo-text"].info is not None and good["demo-text"].info.card["dataset"] == "bundled"
    assert good["mine"].error is None and good["mine"].info is not None
    broken = good["broken"]
    assert broken.info is None and "not a safetensors file" in (broken.error or "")
    assert broken.to_dict()["error"] == broken.error


def test_resolve_name_and_path(bundled: Path, tmp_path: Path) -> None:
    assert lib.resolve_model("demo-text") == bundled / "demo-text.safetensors"
    outside = tmp_path / "elsewhere.safetensors"
    save_model(outside, tiny_model())
    assert lib.resolve_model(str(outside)) == outside
    assert lib.resolve_model(outside) == outside


def test_resolve_unknown_lists_available_names(bundled: Path) -> None:
    with pytest.raises(ValueError, match="no model named 'nope'; available models: demo-text"):
        lib.resolve_model("nope")
    with pytest.raises(ValueError, match="no model file"):
        lib.resolve_model("missing/dir/model.safetensors")


def test_resolve_with_empty_library_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lib, "bundled_models_dir", lambda: tmp_path / "no-bundled-models")
    with pytest.raises(ValueError, match="prime init"):
        lib.resolve_model("anything")


# --------------------------------------------------------------------------- import and remove


def test_import_copies_a_valid_model(bundled: Path, tmp_path: Path) -> None:
    source = tmp_path / "fresh.safetensors"
    save_model(source, tiny_model(seed=2))
    target = lib.import_model(source)
    assert target == lib.user_models_dir() / "fresh.safetensors"
    assert target.read_bytes() == source.read_bytes()
    assert source.exists()
    assert lib.resolve_model("fresh") == target
    renamed = lib.import_model(source, name="fresh-2")
    assert renamed.name == "fresh-2.safetensors"


def test_import_refuses_invalid_files(tmp_path: Path) -> None:
    source = tmp_path / "bad.safetensors"
    source.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFileError):
        lib.import_model(source)
    assert list(lib.user_models_dir().iterdir()) == []


def test_import_refuses_name_clash(bundled: Path, tmp_path: Path) -> None:
    source = tmp_path / "demo-text.safetensors"
    save_model(source, tiny_model(seed=3))
    with pytest.raises(ValueError, match="already used by a bundled model"):
        lib.import_model(source)
    lib.import_model(source, name="copy")
    with pytest.raises(ValueError, match="already used by a model in your library"):
        lib.import_model(source, name="copy")


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden"])
def test_import_refuses_bad_names(tmp_path: Path, name: str) -> None:
    source = tmp_path / "ok.safetensors"
    save_model(source, tiny_model())
    with pytest.raises(ValueError, match="invalid model name"):
        lib.import_model(source, name=name)


def test_remove_user_model_only(bundled: Path, tmp_path: Path) -> None:
    source = tmp_path / "mine.safetensors"
    save_model(source, tiny_model())
    target = lib.import_model(source)
    trashed = lib.remove_model("mine")
    assert not target.exists()
    assert trashed.parent.parent == lib.trash_dir() and trashed.name == target.name
    with pytest.raises(ValueError, match="no user model named 'mine'"):
        lib.remove_model("mine")
    with pytest.raises(ValueError, match="bundled model and cannot be removed"):
        lib.remove_model("demo-text")
    assert (bundled / "demo-text.safetensors").exists()


def test_removed_model_goes_to_the_trash_and_comes_back_byte_identical(bundled: Path, tmp_path: Path) -> None:
    source = tmp_path / "mine.safetensors"
    save_model(source, tiny_model(seed=4), {"dataset": "mine"})
    target = lib.import_model(source)
    original = target.read_bytes()
    assert lib.list_trash() == []
    trashed = lib.trash_model("mine")
    assert not target.exists() and trashed.read_bytes() == original
    assert "mine" not in [entry.name for entry in lib.list_models()]
    [entry] = lib.list_trash()
    assert (entry.name, entry.path) == ("mine", trashed)
    assert lib.restore_model("mine") == target
    assert target.read_bytes() == original
    assert lib.list_trash() == [] and list(lib.trash_dir().iterdir()) == []
    assert lib.read_model_info(target).card["dataset"] == "mine"
    with pytest.raises(ValueError, match="no model named 'mine' in the trash"):
        lib.restore_model("mine")


def test_trash_keeps_every_removal_and_restores_the_newest(bundled: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_model(first, tiny_model(seed=5), {"dataset": "first"})
    save_model(second, tiny_model(seed=6), {"dataset": "second"})
    lib.import_model(first, name="twin")
    lib.trash_model("twin")
    lib.import_model(second, name="twin")
    lib.trash_model("twin")  # same second, same name: both kept
    entries = lib.list_trash()
    assert [entry.name for entry in entries] == ["twin", "twin"]
    assert entries[0].path != entries[1].path
    restored = lib.restore_model("twin")
    assert lib.read_model_info(restored).card["dataset"] == "second"
    # the name is taken again: the older copy stays in the trash, nothing is overwritten
    with pytest.raises(ValueError, match="the name is used by a model in your library"):
        lib.restore_model("twin")
    assert lib.read_model_info(restored).card["dataset"] == "second"
    lib.trash_model("twin")
    assert lib.read_model_info(lib.restore_model("twin")).card["dataset"] == "second"
    lib.trash_model("twin")
    lib.restore_model("twin")
    lib.trash_model("twin")
    assert len(lib.list_trash()) == 2
    with pytest.raises(ValueError, match="bundled model"):
        lib.trash_model("demo-text")


def test_restore_refuses_a_name_a_bundled_model_took(bundled: Path, tmp_path: Path) -> None:
    source = tmp_path / "x.safetensors"
    save_model(source, tiny_model(seed=7))
    lib.import_model(source, name="later-bundled")
    trashed = lib.trash_model("later-bundled")
    save_model(bundled / "later-bundled.safetensors", tiny_model(seed=8))
    with pytest.raises(ValueError, match="used by a bundled model"):
        lib.restore_model("later-bundled")
    assert trashed.exists()


def test_cli_remove_says_how_to_restore_and_restore_puts_it_back(
    bundled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from engine.cli import main

    source = tmp_path / "cli.safetensors"
    save_model(source, tiny_model(seed=9))
    target = lib.import_model(source, name="cli-model")
    assert main(["remove", "cli-model"]) == 0
    out = capsys.readouterr().out
    assert "trash" in out and "prime restore cli-model" in out
    assert not target.exists()
    assert main(["restore", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["trash"]
    assert [item["name"] for item in listed] == ["cli-model"]
    assert main(["restore", "cli-model", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"restored": "cli-model", "path": str(target)}
    assert target.read_bytes() == source.read_bytes()
    assert main(["restore", "cli-model"]) == 2
    assert "no model named 'cli-model' in the trash" in capsys.readouterr().err


@pytest.mark.slow
def test_regular_install_finds_bundled_models(tmp_path: Path) -> None:
    """A non-editable install ships assets/ as ``prime_assets``; the library finds models there."""
    import shutil
    import subprocess

    pytest.importorskip("setuptools")
    repo = Path(__file__).resolve().parents[2]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(repo / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("engine", "studio", "assets"):
        shutil.copytree(repo / name, src / name, ignore=ignore)
    (src / "assets" / "models").mkdir(parents=True, exist_ok=True)
    save_model(src / "assets" / "models" / "shipped.safetensors", tiny_model(), {"dataset": "shipped"})
    wheel_dir, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "--no-input"]
    build = subprocess.run(
        [*pip, "wheel", "--no-index", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), str(src)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheel_dir.glob("prime_studio-*.whl")
    install = subprocess.run(
        [*pip, "install", "--no-index", "--no-deps", "--target", str(site), str(wheel)], capture_output=True
    )
    assert install.returncode == 0, install.stderr
    probe = (
        "import engine, engine.files.library as lib; "
        "print(engine.__file__); print(lib.bundled_models_dir()); "
        "print([(e.name, e.bundled, e.info.card.get('dataset')) for e in lib.list_models()])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site), "PRIME_STUDIO_HOME": str(tmp_path / "home")},
    )
    assert done.returncode == 0, done.stderr
    engine_file, bundled_dir, listing = done.stdout.strip().splitlines()
    assert engine_file.startswith(str(site))
    assert bundled_dir == str(site / "prime_assets" / "models")
    assert "('shipped', True, 'shipped')" in listing  # beside any models the repository bundles


def test_imported_copy_has_ordinary_permissions(tmp_path: Path) -> None:
    source = tmp_path / "private.safetensors"
    save_model(source, tiny_model())
    source.chmod(0o600)
    old = os.umask(0o022)
    try:
        target = lib.import_model(source)
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644
