"""Hostile model files and outputs (issue 17, items 1-3, 7, 8, 10): clear refusals, bounded, nothing lost.

Each test builds a tiny real model, damages its file the way the hostile-input campaign did, and
checks the refusal (message, time, memory) or that the old output survives.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine import ModelConfig, PrimeModel
from engine.cli import main
from engine.cli.common import printable
from engine.cli.generate import all_or_nothing
from engine.files import atomic
from engine.files.library import import_model, list_models, user_models_dir
from engine.files.modelfile import (
    ModelFileError,
    expected_shapes,
    load_model,
    read_model_info,
    read_safetensors,
    save_model,
)

from ._tiny import tiny_image_model

ROOT = Path(__file__).resolve().parents[2]


def tiny(ell: int = 2, seed: int = 0) -> PrimeModel:
    with torch.random.fork_rng(devices=[]):
        return tiny_image_model(num_classes=16, ell=ell, seed=seed)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.safetensors"
    save_model(path, tiny(), {"description": "unit test", "steps": 3})
    return path


def edited(path: Path, name: str = "edited.safetensors", keep_digest: bool = True, **changes: str) -> Path:
    """A copy of a model file with some metadata entries replaced (tensors unchanged)."""
    tensors, metadata = read_safetensors(path)
    metadata.update(changes)
    if not keep_digest:
        metadata.pop("weights_digest", None)
    out = path.with_name(name)
    save_file(tensors, str(out), metadata=metadata)
    return out


def with_config(path: Path, name: str = "edited.safetensors", **fields: object) -> Path:
    config = json.loads(read_safetensors(path)[1]["config"]) | fields
    return edited(path, name, config=json.dumps(config))


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- 1: bounded memory


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(
            modality="image", num_classes=17, ell=2, height=8, width=8, channels=1, d_model=16, n_layers=2
        ),
        ModelConfig(
            modality="image", num_classes=256, ell=3, height=2, width=3, channels=3, d_model=24, n_heads=2
        ),
        ModelConfig(
            modality="image", num_classes=4, height=3, width=5, channels=3, d_model=16, augment_shift=2
        ),
        ModelConfig(modality="text", num_classes=256, ell=2, seq_len=8, d_model=16, n_layers=1, n_heads=2),
        ModelConfig(
            modality="text", num_classes=256, seq_len=8, d_model=16, positions="learned", mlp_ratio=2
        ),
    ],
)
def test_expected_shapes_are_the_models_own(config: ModelConfig) -> None:
    """The header check's shapes, computed without building anything, equal a real model's."""
    assert expected_shapes(config) == {k: tuple(v.shape) for k, v in PrimeModel(config).state_dict().items()}


HUGE = [
    {"n_layers": 10**12},
    {"d_model": 4096},
    {"d_model": 10**6},
    {"height": 10**9},
    {"mlp_ratio": 10**6},
    {"n_heads": 2, "d_model": 4096, "n_layers": 1000},
    {"width": 50_000, "height": 50_000},
]


@pytest.mark.parametrize("fields", HUGE, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
def test_huge_config_values_are_refused_before_building_anything(model_file: Path, fields: dict) -> None:
    bad = with_config(model_file, **fields)
    started = time.perf_counter()
    with pytest.raises(ModelFileError, match="invalid model config|do not match the config"):
        read_model_info(bad)
    with pytest.raises(ModelFileError):
        load_model(bad)
    assert time.perf_counter() - started < 2.0


def test_huge_configs_stay_within_a_memory_limit(model_file: Path, tmp_path: Path) -> None:
    """``prime info --check`` in a process limited to 2 GB of address space refuses each one."""
    files = [str(with_config(model_file, f"huge{i}.safetensors", **f)) for i, f in enumerate(HUGE)]
    script = (
        "import resource, sys, json\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))\n"
        "from engine.cli import main\n"
        "codes = [main(['info', f, '--check']) for f in json.loads(sys.argv[1])]\n"
        "print(json.dumps(codes))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [2] * len(HUGE)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == len(HUGE) and all(line.startswith("error: ") for line in lines)
    assert not any("unexpected" in line or "memory" in line.lower() for line in lines), lines
    assert time.perf_counter() - started < 60


# --------------------------------------------------------------------------- 2: parser crashes


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"d_model": 128.0}, "d_model must be an integer"),
        ({"ell": 2.0}, "ell must be an integer"),
        ({"num_classes": 17.5}, "num_classes must be an integer"),
        ({"n_layers": True}, "n_layers must be an integer"),
        ({"height": "4"}, "height must be an integer"),
        ({"schedule_power": math.nan}, "schedule_power must be a finite number"),
        ({"dropout": math.inf}, "dropout must be a finite number"),
        ({"modality": 3}, "modality must be a string"),
        ({"permutation": [0.5] * 16}, "permutation must be a list of 16 integers"),
    ],
)
def test_wrongly_typed_config_values_are_refused(model_file: Path, fields: dict, message: str) -> None:
    with pytest.raises(ModelFileError, match=message):
        read_model_info(with_config(model_file, **fields))


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("key", ["card", "config"])
@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_json_is_refused_not_a_recursion_error(model_file: Path, key: str, depth: int) -> None:
    with pytest.raises(ModelFileError, match=f"metadata '{key}' is nested too deeply"):
        read_model_info(edited(model_file, **{key: deep(depth)}))


def test_one_bad_file_never_hides_the_others(model_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = user_models_dir()
    (folder / "good.safetensors").write_bytes(model_file.read_bytes())
    (folder / "deep.safetensors").write_bytes(edited(model_file, card=deep(100_000)).read_bytes())
    (folder / "float.safetensors").write_bytes(with_config(model_file, d_model=16.0).read_bytes())
    (folder / "empty.safetensors").write_bytes(b"")
    entries = {e.name: e for e in list_models()}
    assert entries["good"].info is not None
    assert all(entries[n].info is None and entries[n].error for n in ("deep", "float", "empty"))
    code, out, _ = cli(capsys, "models", "--json")
    assert code == 0
    listed = {m["name"]: m for m in json.loads(out)["models"]}
    assert listed["good"]["error"] is None and "nested too deeply" in listed["deep"]["error"]


def test_card_values_of_any_type_are_shown(model_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = {
        "metrics": {"valid_bound": {"bits_per_dim": "1.5", "perplexity": [3], "items": {"x": 1}}},
        "steps": {"a": [1, 2]},
        "training": "yes",
        "nested": {"k": [None, True, 1.5]},
    }
    bad = edited(model_file, card=json.dumps(card))
    code, out, err = cli(capsys, "info", str(bad))
    assert code == 0, err
    assert "training:" in out and "nested:" in out
    code, out, err = cli(capsys, "models")
    assert code == 0, err


def test_nan_in_a_card_never_reaches_json_output(
    model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = edited(model_file, card='{"loss": NaN, "metrics": {"valid_bound": {"bits_per_dim": Infinity}}}')
    code, out, err = cli(capsys, "info", str(bad), "--json")
    assert code == 0, err

    def refuse(constant: str) -> None:
        raise AssertionError(f"bare {constant} in --json output")

    report = json.loads(out, parse_constant=refuse)
    assert report["card"]["loss"] is None
    code, out, _ = cli(capsys, "info", str(bad))
    assert code == 0 and "valid bound" not in out  # not formatted as a number


# --------------------------------------------------------------------------- 3: checksums


def test_every_bit_flip_in_the_weights_is_caught(model_file: Path, tmp_path: Path) -> None:
    raw = model_file.read_bytes()
    start = 8 + int.from_bytes(raw[:8], "little")
    rng = random.Random(3)
    caught = 0
    for i in range(40):
        flipped = bytearray(raw)
        pos = rng.randrange(start, len(raw))
        flipped[pos] ^= 1 << rng.randrange(8)
        path = tmp_path / f"flip{i}.safetensors"
        path.write_bytes(bytes(flipped))
        with pytest.raises(ModelFileError, match="do not match their checksum|non-finite"):
            load_model(path)
        caught += 1
    assert caught == 40


def test_files_without_a_checksum_load_with_a_note(
    model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = edited(model_file, "old.safetensors", keep_digest=False)
    model, info = load_model(old)
    assert info.digest is None
    code, out, _ = cli(capsys, "info", str(old), "--check")
    assert code == 0 and "checksum:   none (written before checksums" in out
    code, out, _ = cli(capsys, "info", str(model_file))
    assert code == 0 and "checksum:   blake2b-256:" in out


def test_a_changed_checksum_is_refused(model_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = edited(model_file, weights_digest="blake2b-256:" + "0" * 64)
    code, _, err = cli(capsys, "info", str(bad), "--check")
    assert code == 2 and "the weights do not match their checksum" in err
    with pytest.raises(ModelFileError, match="unknown weights digest"):
        read_model_info(edited(model_file, weights_digest="md5:abc"))


# --------------------------------------------------------------------------- 4 (generate): FIFOs


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_generate_refuses_a_fifo_as_image(model_file: Path, tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "picture.png"
    os.mkfifo(fifo)
    started = time.perf_counter()
    out = str(tmp_path / "o.png")
    code, _, err = cli(
        capsys,
        "generate",
        "--model",
        str(model_file),
        "--out",
        out,
        "--image",
        str(fifo),
        "--keep-digits",
        "1",
    )
    assert code == 2 and "not a regular file" in err
    assert time.perf_counter() - started < 5
    assert not (tmp_path / "o.png").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_model_loading_refuses_a_fifo_and_a_device(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="not a regular file"):
        read_model_info(fifo)
    if os.path.exists("/dev/zero"):
        link = tmp_path / "zero.safetensors"
        link.symlink_to("/dev/zero")
        with pytest.raises(ModelFileError, match="not a regular file"):
            load_model(link)


# --------------------------------------------------------------------------- 7: full disk, modes


def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fsync of a file being written fails with ENOSPC, as on a full disk."""

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)


def test_generate_on_a_full_disk_keeps_the_old_outputs(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    png, gif = tmp_path / "grid.png", tmp_path / "grid.gif"
    args = [
        "generate",
        "--model",
        str(model_file),
        "--out",
        str(png),
        "--trajectory",
        str(gif),
        "--steps",
        "2",
    ]
    assert cli(capsys, *args)[0] == 0
    before = png.read_bytes(), gif.read_bytes()
    full_disk(monkeypatch)
    code, out, err = cli(capsys, *args, "--seed", "5", "--json")
    assert code == 2
    assert "the disk is full (" in err and "MB needed)" in err and "unexpected" not in err
    assert json.loads(out)["error"] == err.strip()[len("error: ") :]
    assert f"{png}: the disk is full (" in err and "nothing new was written" in err
    assert (png.read_bytes(), gif.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_text_output_on_a_full_disk_keeps_the_old_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = ModelConfig(modality="text", num_classes=256, ell=2, seq_len=8, d_model=16, n_layers=1, n_heads=2)
    save_model(tmp_path / "t.safetensors", PrimeModel(cfg))
    out = tmp_path / "story.txt"
    out.write_text("the good old text\n")
    full_disk(monkeypatch)
    code, _, err = cli(capsys, "generate", "--model", str(tmp_path / "t.safetensors"), "--out", str(out))
    assert code == 2 and "the disk is full" in err
    assert out.read_text() == "the good old text\n"


def test_import_on_a_full_disk_leaves_nothing_half_copied(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_disk(monkeypatch)
    with pytest.raises(atomic.DiskFullError, match="the disk is full"):
        import_model(model_file, name="copy")
    assert list(user_models_dir().iterdir()) == []


def test_rewriting_a_private_model_keeps_its_mode(model_file: Path) -> None:
    os.chmod(model_file, 0o600)
    save_model(model_file, tiny(seed=1))
    assert stat.S_IMODE(model_file.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- 8: Ctrl-C


def test_an_interrupted_set_of_outputs_leaves_the_old_set(tmp_path: Path) -> None:
    png, gif = tmp_path / "a.png", tmp_path / "a.gif"
    png.write_bytes(b"old png")
    gif.write_bytes(b"old gif")
    with pytest.raises(KeyboardInterrupt, match="nothing new was written"):
        with all_or_nothing() as files:
            files.temp(png).write_bytes(b"new png")
            files.temp(gif).write_bytes(b"half a gif")
            raise KeyboardInterrupt
    assert png.read_bytes() == b"old png" and gif.read_bytes() == b"old gif"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.png"]
    with all_or_nothing() as files:
        files.temp(png).write_bytes(b"new png")
        files.temp(gif).write_bytes(b"new gif")
    assert png.read_bytes() == b"new png" and gif.read_bytes() == b"new gif"


def test_a_full_disk_while_committing_a_set_renames_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    png, gif = tmp_path / "a.png", tmp_path / "a.gif"
    png.write_bytes(b"old png")
    gif.write_bytes(b"old gif")
    with pytest.raises(atomic.DiskFullError, match="the disk is full"):
        with all_or_nothing() as files:
            files.temp(png).write_bytes(b"new png")
            files.temp(gif).write_bytes(b"new gif")
            full_disk(monkeypatch)  # the data is written; flushing it fails
    assert png.read_bytes() == b"old png" and gif.read_bytes() == b"old gif"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.png"]


def test_ctrl_c_after_sampling_prints_a_json_error_and_keeps_the_old_pair(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.cli import generate

    png, gif = tmp_path / "g.png", tmp_path / "g.gif"
    args = [
        "generate",
        "--model",
        str(model_file),
        "--out",
        str(png),
        "--trajectory",
        str(gif),
        "--steps",
        "2",
    ]
    assert cli(capsys, *args)[0] == 0
    before = png.read_bytes(), gif.read_bytes()

    def interrupted(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "save_gif", interrupted)  # Ctrl-C while the GIF is written
    code, out, err = cli(capsys, *args, "--seed", "9", "--json")
    assert code == 130
    report = json.loads(out)
    assert report["kind"] == "interrupted" and "nothing new was written" in report["error"]
    assert err.startswith("error: interrupted")
    assert (png.read_bytes(), gif.read_bytes()) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32", reason="POSIX signals")
def test_an_interrupt_during_shutdown_does_not_kill_prime(tmp_path: Path) -> None:
    """After the command, SIGINT is ignored: a late Ctrl-C cannot turn exit status 0 into a signal death."""
    script = (
        "import os, signal, sys\n"
        "from engine.cli import main\n"
        "sys.argv = ['prime', 'models', '--json']\n"
        "code = main()\n"
        "os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C as the interpreter shuts down\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PRIME_STUDIO_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-500:])


# --------------------------------------------------------------------------- 10: terminal output


def test_info_strips_terminal_escapes_from_the_card(
    model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    card = {"\x1b]0;owned\x07title": "\x1b[2J\x1b[31mred\rline\u202eevil", "notes": "tab\there"}
    bad = edited(model_file, card=json.dumps(card))
    code, out, _ = cli(capsys, "info", str(bad))
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\u202e" not in out
    assert "red" in out and "tab\there" in out
    assert printable("a\x1b[1mb\nc") == "a\\x1b[1mb\nc"


def test_json_errors_are_one_object(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = cli(capsys, "info", str(tmp_path / "missing.safetensors"), "--json")
    assert code == 2 and json.loads(out)["kind"] == "error" and err.startswith("error: ")


def test_printable_keeps_text_readable() -> None:
    buffer = io.StringIO()
    print(printable("naïve café ✓ \u4e2d\u6587"), file=buffer)
    assert buffer.getvalue() == "naïve café ✓ \u4e2d\u6587\n"
