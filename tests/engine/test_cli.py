"""The ``prime`` CLI end to end on tiny models made in the tests (d_model 16, 1 layer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.files.media import MASK_RGB

REPO = Path(__file__).resolve().parents[2]
TINY = ["--d-model", "16", "--n-layers", "1", "--n-heads", "2"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def image_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "img.safetensors"
    args = ["init", "--modality", "image", "--classes", "16", "--ell", "2", "--height", "4", "--width", "6"]
    code, _, err = run(capsys, *args, *TINY, "--out", str(path))
    assert code == 0, err
    return path


@pytest.fixture
def text_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "txt.safetensors"
    code, _, err = run(
        capsys, "init", "--modality", "text", "--seq-len", "24", "--ell", "2", *TINY, "--out", str(path)
    )
    assert code == 0, err
    return path


# --------------------------------------------------------------------------- init / info / models


def test_init_json_describes_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.safetensors"
    info = run_json(
        capsys, "init", "--classes", "16", "--ell", "4", "--height", "3", *TINY, "--out", str(path)
    )
    assert path.is_file()
    cfg = info["config"]
    assert (cfg["modality"], cfg["num_classes"], cfg["ell"], cfg["height"], cfg["width"]) == (
        "image",
        16,
        4,
        3,
        3,
    )
    assert (cfg["d_model"], cfg["n_layers"], cfg["n_heads"]) == (16, 1, 2)
    assert info["base"] == 2
    assert info["num_parameters"] > 0 and info["file_size"] == path.stat().st_size
    assert info["card"]["steps"] == 0


def test_init_size_presets_and_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = run_json(capsys, "init", "--size", "tiny", "--height", "4", "--out", str(tmp_path / "a.safetensors"))
    assert (a["config"]["d_model"], a["config"]["n_layers"]) == (64, 2)
    run_json(capsys, "init", "--size", "tiny", "--height", "4", "--out", str(tmp_path / "b.safetensors"))
    # same seed, same weights: byte-identical apart from the creation time in the card
    from engine.files.modelfile import read_safetensors

    wa, _ = read_safetensors(tmp_path / "a.safetensors")
    wb, _ = read_safetensors(tmp_path / "b.safetensors")
    assert all((wa[k] == wb[k]).all() for k in wa)


def test_init_refuses_to_overwrite(image_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = image_model.read_bytes()
    code, _, err = run(capsys, "init", "--height", "4", *TINY, "--out", str(image_model))
    assert_one_line_error(code, err, "already exists", "--force")
    assert image_model.read_bytes() == before
    code, _, err = run(capsys, "init", "--height", "4", *TINY, "--out", str(image_model), "--force")
    assert code == 0, err


def test_init_into_library_then_models_and_info(capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "init", "--modality", "text", "--seq-len", "8", *TINY, "--name", "scratch")
    listing = run_json(capsys, "models")
    mine = [m for m in listing["models"] if m["name"] == "scratch"]
    assert mine and mine[0]["bundled"] is False and mine[0]["modality"] == "text" and mine[0]["error"] is None
    info = run_json(capsys, "info", "scratch")
    assert info["config"]["seq_len"] == 8
    code, out, _ = run(capsys, "info", "scratch")
    assert code == 0 and "text (bytes) of 8 tokens" in out
    code, out, _ = run(capsys, "models")
    assert code == 0 and "scratch" in out and "untrained" in out


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["init", "--ell", "3", "--d-model", "16", "--out", "x.safetensors"], ["d_model=16", "ell=3"]),
        (["init", "--classes", "1", "--out", "x.safetensors"], ["num_classes"]),
        (["init", "--height", "0", "--out", "x.safetensors"], ["height=0"]),
        (["init", "--height", "4", "--channels", "2", "--out", "x.safetensors"], ["channels=2"]),
        (["init", "--d-model", "0", "--out", "x.safetensors"], ["d_model=0"]),
        (["init", "--n-layers", "0", "--out", "x.safetensors"], ["n_layers"]),
        (["init", "--modality", "text", "--seq-len", "0", "--out", "x.safetensors"], ["seq_len"]),
        (["init", "--modality", "text", "--classes", "16", "--out", "x.safetensors"], ["num_classes=256"]),
        (["init", "--modality", "text", "--height", "4", "--out", "x.safetensors"], ["--height"]),
        (["init", "--modality", "image", "--seq-len", "4", "--out", "x.safetensors"], ["--seq-len"]),
        (["init", "--out", "x.bin"], [".safetensors"]),
        (["init"], ["--out", "--name"]),
        (["init", "--modality", "audio", "--out", "x.safetensors"], ["audio"]),
        (["frobnicate"], ["frobnicate"]),
    ],
)
def test_init_bad_input(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list,
    needles: list,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "x.safetensors").exists()


def test_info_of_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage garbage garbage")
    code, _, err = run(capsys, "info", str(bad))
    assert_one_line_error(code, err, str(bad), "not a safetensors file")


def test_unknown_model_lists_names(capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "init", "--height", "2", *TINY, "--name", "known")
    code, _, err = run(capsys, "info", "unknown")
    assert_one_line_error(code, err, "no model named 'unknown'", "known")


def test_import_and_remove(image_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = run_json(capsys, "import", str(image_model), "--name", "imported")
    assert info["name"] == "imported"
    assert run_json(capsys, "remove", "imported")["removed"] == "imported"
    code, _, err = run(capsys, "remove", "imported")
    assert_one_line_error(code, err, "no user model named 'imported'")


# --------------------------------------------------------------------------- generate


def test_generate_image_json_png_and_gif(
    image_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, gif = tmp_path / "grid.png", tmp_path / "traj.gif"
    report = run_json(
        capsys,
        *("generate", "--model", str(image_model), "--out", str(out), "--num", "3", "--steps", "12"),
        *("--seed", "7", "--top-p", "0.9", "--trajectory", str(gif), "--scale", "2"),
    )
    assert report["steps"] == 12 and report["steps_done"] == 12 and not report["cancelled"]
    assert len(report["nfe"]) == 3 and len(report["idle_steps"]) == 3
    assert all(
        n + i == 12 for n, i in zip(report["nfe"], report["idle_steps"], strict=True)
    )  # cache on: NFE = T - idle
    assert report["seconds"] >= 0
    kinds = {o["kind"]: o for o in report["outputs"]}
    assert kinds["image_grid"]["path"] == str(out) and kinds["trajectory"]["path"] == str(gif)

    with Image.open(out) as png:
        assert png.format == "PNG"
        text = dict(png.text)
        size = png.size
        result = np.asarray(png.convert("RGB"))
    assert text["model"] == "img" and text["seed"] == "7" and text["steps"] == "12"
    assert text["top_p"] == "0.9" and text["reveal"] == "joint" and text["app_version"]
    assert json.loads(text["prime-settings"])["num_samples"] == 3
    # 3 samples of 4x6 at scale 2 in a 2x2 grid with 2px padding
    assert size == (2 * 12 + 3 * 2, 2 * 8 + 3 * 2)

    with Image.open(gif) as frames:
        n_frames = frames.n_frames
        first = np.asarray(frames.convert("RGB"))
        frames.seek(n_frames - 1)
        last = np.asarray(frames.convert("RGB"))
    assert n_frames > 2
    cell = first[2 : 2 + 8, 2 : 2 + 12]  # first sample at step 0: everything masked
    assert (cell == np.array(MASK_RGB, dtype=np.uint8)).all()
    assert np.array_equal(last, result)  # the animation ends on the result


def test_generate_is_deterministic(
    image_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def pixels(seed: str, name: str) -> np.ndarray:
        code, _, err = run(
            capsys, "generate", "--model", str(image_model), "--out", str(tmp_path / name), "--seed", seed
        )
        assert code == 0, err
        with Image.open(tmp_path / name) as image:
            return np.asarray(image.convert("RGB"))

    assert np.array_equal(pixels("3", "a.png"), pixels("3", "b.png"))
    assert not np.array_equal(pixels("3", "a.png"), pixels("4", "c.png"))


def test_generate_text_with_prompt_suffix_and_length(
    text_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, gif = tmp_path / "t.txt", tmp_path / "t.gif"
    report = run_json(
        capsys,
        *("generate", "--model", str(text_model), "--out", str(out), "--num", "2", "--steps", "10"),
        *("--prompt", "Hi ", "--length", "5", "--suffix", "!", "--trajectory", str(gif)),
    )
    texts = report["texts"]
    assert len(texts) == 2
    for text in texts:
        raw = text.encode("utf-8", errors="surrogatepass")
        assert text.startswith("Hi ") and text.endswith("!"), text
        assert len(text) >= 3 + 1  # prompt + suffix kept; middle bytes may decode to fewer chars
        assert raw[:3] == b"Hi "
    assert report["outputs"][0]["texts"] == texts
    written = out.read_text(encoding="utf-8")
    assert texts[0] in written and texts[1] in written
    with Image.open(gif) as frames:
        assert frames.n_frames >= 2


def test_generate_text_prints_the_text(
    text_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "generate", "--model", str(text_model), "--out", str(tmp_path / "o.txt"), "--prompt", "abc"
    )
    assert code == 0, err
    assert out.startswith("abc")
    assert (tmp_path / "o.txt").read_text(encoding="utf-8").startswith("abc")


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--prompt", "x" * 30], ["prompt is 30 bytes", "24 tokens"]),
        (["--prompt", "x" * 20, "--length", "8"], ["= 28 tokens", "24 tokens"]),
        (["--length", "0"], ["--length must be >= 1"]),
        (["--top-p", "2"], ["top_p", "(0, 1]"]),
        (["--top-p", "0"], ["top_p"]),
        (["--top-k", "-1"], ["top_k"]),
        (["--top-k", "300"], ["--top-k", "0..256"]),
        (["--temperature", "0"], ["temperature"]),
        (["--temperature", "nan"], ["temperature"]),
        (["--steps", "0"], ["steps"]),
        (["--num", "0"], ["num_samples"]),
        (["--corrector", "1.5"], ["corrector"]),
        (["--corrector", "0.2", "--corrector-start", "0"], ["corrector_start", "(0, 1]"]),
        (["--reveal", "sideways"], ["sideways"]),
        (["--steps", "many"], ["many"]),
        (["--trajectory", "t.mp4"], [".gif"]),
        (["--device", "quantum"], ["quantum"]),
        (["--out", "picture.png"], ["text models write text"]),
    ],
)
def test_generate_bad_input_is_one_clear_line(
    text_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list, needles: list
) -> None:
    out = tmp_path / "never.txt"
    extra = [str(tmp_path / a) if a == "picture.png" else a for a in extra]
    code, _, err = run(capsys, "generate", "--model", str(text_model), "--out", str(out), *extra)
    assert_one_line_error(code, err, *needles)
    assert not out.exists()


def test_generate_image_bad_input(
    image_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "generate", "--model", str(image_model), "--out", str(tmp_path / "x.jpg"))
    assert_one_line_error(code, err, ".png")
    code, _, err = run(
        capsys, "generate", "--model", str(image_model), "--out", str(tmp_path / "x.png"), "--prompt", "a"
    )
    assert_one_line_error(code, err, "--prompt", "text models")
    code, _, err = run(capsys, "generate", "--model", "no-such-model", "--out", str(tmp_path / "x.png"))
    assert_one_line_error(code, err, "no-such-model")


def test_generate_from_truncated_model(
    image_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = image_model.read_bytes()
    image_model.write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, "generate", "--model", str(image_model), "--out", str(tmp_path / "x.png"))
    assert_one_line_error(code, err, "truncated")


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "info", str(tmp_path / "missing.safetensors"), "--debug")
    assert code == 2
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


# --------------------------------------------------------------------------- entry points and no-Qt


def test_python_dash_m_engine_is_prime(tmp_path: Path) -> None:
    """A real process: exit status 2 and exactly one stderr line, no traceback."""
    env = {**os.environ, "PRIME_STUDIO_HOME": str(tmp_path)}
    bad = subprocess.run(
        [sys.executable, "-m", "engine", "info", "nothing-here"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: no model named 'nothing-here'")
    assert "Traceback" not in bad.stderr and bad.stdout == ""


BLOCKER = """
import importlib.abc
import sys

BLOCKED = ("PySide6", "shiboken6", "qasync", "studio")


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""

NO_QT_SCRIPT = """
import sys
import engine
from engine import ModelConfig, PrimeModel, SampleRequest, sample
from engine import bench, cli, files  # noqa: F401
from engine.bench import matmul, metrics, objectives, quality, train  # noqa: F401
from engine.files import convert, library, media, modelfile  # noqa: F401

try:
    import PySide6  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("the blocker did not work")

cfg = ModelConfig(modality="image", num_classes=16, ell=2, height=3, width=3, channels=1,
                  d_model=16, n_layers=1, n_heads=2)
result = sample(PrimeModel(cfg), SampleRequest(num_samples=2, steps=5, seed=1))
assert result.tokens.shape == (2, 9) and bool((result.tokens >= 0).all())
out = sys.argv[1]
assert cli.main(["init", "--height", "3", "--d-model", "16", "--n-layers", "1", "--n-heads", "2",
                 "--out", out + "/m.safetensors"]) == 0
assert cli.main(["generate", "--model", out + "/m.safetensors", "--out", out + "/g.png", "--steps", "4",
                 "--trajectory", out + "/g.gif", "--json"]) == 0
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "qasync", "studio"))
assert loaded == [], loaded
print("ok")
"""


def test_engine_works_without_qt(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(BLOCKER))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "PRIME_STUDIO_HOME": str(tmp_path / "home"),
    }
    done = subprocess.run(
        [sys.executable, "-c", NO_QT_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "ok"
    assert (tmp_path / "g.png").is_file() and (tmp_path / "g.gif").is_file()


def test_train_and_eval_are_registered(capsys: pytest.CaptureFixture[str]) -> None:
    """engine.cli.train provides them; usage errors there are one line like everywhere else."""
    from engine.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"train", "eval"} <= set(commands)
    code, _, err = run(capsys, "train", "--out", "x.safetensors")
    assert_one_line_error(code, err, "--data")
    code, _, err = run(capsys, "eval", "--model", "nothing-here", "--data", "nowhere")
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err


def _source_image(path: Path) -> np.ndarray:
    """A 4x6 grey picture whose pixels are exact levels of C=16 (multiples of 17)."""
    levels = (np.arange(24).reshape(4, 6) * 7) % 16
    Image.fromarray((levels * 17).astype(np.uint8), mode="L").save(path)
    return levels


def _cells(path: Path, num: int) -> np.ndarray:
    """Levels of the samples in a scale-1 grid PNG of 4x6 images (2 px padding, 2 columns)."""
    with Image.open(path) as png:
        canvas = np.asarray(png.convert("L")).astype(int)
    cells = []
    for i in range(num):
        r, q = divmod(i, 2)
        top, left = 2 + r * 6, 2 + q * 8
        cells.append(canvas[top : top + 4, left : left + 6] // 17)
    return np.stack(cells)


def test_generate_keep_high_digits(
    image_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    levels = _source_image(tmp_path / "src.png")
    out = tmp_path / "keep.png"
    report = run_json(
        capsys,
        *("generate", "--model", str(image_model), "--out", str(out), "--num", "4", "--scale", "1"),
        *("--image", str(tmp_path / "src.png"), "--keep-digits", "1", "--steps", "8"),
    )
    assert report["conditioning"] == {"image": str(tmp_path / "src.png"), "keep_digits": 1}
    cells = _cells(out, 4)
    assert (cells // 4 == levels // 4).all()  # base 4: the high digit of every pixel is kept
    assert (cells % 4 != levels % 4).any()  # the low digits were regenerated
    with Image.open(out) as png:
        assert png.text["keep_digits"] == "1"


def test_generate_inpaint_box(image_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    levels = _source_image(tmp_path / "src.png")
    out = tmp_path / "inpaint.png"
    run_json(
        capsys,
        *("generate", "--model", str(image_model), "--out", str(out), "--num", "2", "--scale", "1"),
        *("--image", str(tmp_path / "src.png"), "--inpaint", "1,1,3,2", "--steps", "8"),
    )
    cells = _cells(out, 2)
    outside = np.ones((4, 6), dtype=bool)
    outside[1:3, 1:4] = False
    assert (cells[:, outside] == levels[outside]).all()
    assert (cells[:, ~outside] != levels[~outside]).any()


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--keep-digits", "1"], ["need --image"]),
        (["--image", "SRC"], ["--keep-digits", "--inpaint"]),
        (["--image", "SRC", "--keep-digits", "2"], ["--keep-digits must be in 1..1", "ell=2"]),
        (["--image", "SRC", "--inpaint", "5,0,3,1"], ["--inpaint box", "6x4"]),
        (["--image", "SRC", "--inpaint", "a,b"], ["X,Y,W,H"]),
        (["--image", "NOT_AN_IMAGE", "--keep-digits", "1"], ["cannot read --image"]),
    ],
)
def test_generate_image_conditioning_errors(
    image_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list, needles: list
) -> None:
    _source_image(tmp_path / "src.png")
    (tmp_path / "junk.png").write_text("not a picture")
    extra = [
        str(tmp_path / "src.png") if a == "SRC" else str(tmp_path / "junk.png") if a == "NOT_AN_IMAGE" else a
        for a in extra
    ]
    code, _, err = run(
        capsys, "generate", "--model", str(image_model), "--out", str(tmp_path / "x.png"), *extra
    )
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "x.png").exists()


def test_image_flags_on_text_model(
    text_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "generate", "--model", str(text_model), "--out", str(tmp_path / "t.txt"), "--keep-digits", "1"
    )
    assert_one_line_error(code, err, "--keep-digits", "image models")


def test_ctrl_c_cancels_cooperatively_and_keeps_the_partial_result() -> None:
    """The first SIGINT during generation sets the cancel token; the sampler returns its partial result."""
    import signal

    import torch

    from engine import CancelToken, ModelConfig, PrimeModel, SampleRequest, iter_sample
    from engine.cli.generate import drive

    cfg = ModelConfig(
        modality="image", num_classes=16, ell=2, height=3, width=3, channels=1, d_model=16, n_heads=2
    )
    torch.manual_seed(0)
    cancel = CancelToken()
    inner = iter_sample(PrimeModel(cfg), SampleRequest(num_samples=2, steps=40, seed=0), cancel)

    def interrupt_after_three():
        for count in range(1, 10**6):
            try:
                step = next(inner)
            except StopIteration as stop:
                return stop.value
            if count == 3:
                signal.raise_signal(signal.SIGINT)
            yield step

    before = signal.getsignal(signal.SIGINT)
    result = drive(interrupt_after_three(), cancel, progress=False)
    assert cancel.cancelled
    assert result.cancelled and result.steps_done == 3
    assert result.tokens.shape == (2, 9)
    assert signal.getsignal(signal.SIGINT) is before  # the handler is removed afterwards


def test_info_summarises_the_valid_bound_of_a_trained_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine import ModelConfig, PrimeModel
    from engine.files.modelfile import save_model

    cfg = ModelConfig(modality="text", num_classes=256, seq_len=4, d_model=16, n_layers=1, n_heads=2)
    bound = {
        "bits_per_dim": 1.23456,
        "stderr_bits_per_dim": 0.0123,
        "perplexity": 2.5,
        "split": "validation",
        "items": 50,
    }
    card = {"metrics": {"valid_bound": bound}, "training": {"steps": 700}, "notes": "x" * 500}
    save_model(tmp_path / "trained.safetensors", PrimeModel(cfg), card)
    code, out, _ = run(capsys, "info", str(tmp_path / "trained.safetensors"))
    assert code == 0
    assert "valid bound 1.235 +- 0.012 bits/dim, perplexity <= 2.5 (validation, 50 items)" in out
    assert max(len(line) for line in out.splitlines()) < 200  # long card values are cut
    assert run_json(capsys, "info", str(tmp_path / "trained.safetensors"))["card"]["notes"] == "x" * 500
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert run_json(capsys, "import", str(tmp_path / "trained.safetensors"))["name"] == "trained"
    code, out, _ = run(capsys, "models")
    assert "700 steps" in out
