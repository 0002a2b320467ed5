"""``prime train`` and ``prime eval`` through the real CLI entry point."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from engine.cli import main
from tests.engine.data._files import image_folder

TINY = [
    "--size",
    "tiny",
    "--height",
    "4",
    "--width",
    "4",
    "--levels",
    "4",
    "--d-model",
    "16",
    "--n-layers",
    "1",
]
FAST = [
    "--steps",
    "3",
    "--batch-size",
    "4",
    "--eval-every",
    "0",
    "--checkpoint-every",
    "0",
    "--preview-every",
    "0",
]


def test_dry_run_prints_the_preflight_report(tmp_path, capsys) -> None:
    folder = image_folder(tmp_path / "imgs", n=4, mode="L")
    (folder / "broken.png").write_bytes(b"")
    assert main(["train", "--data", str(folder), "--out", str(tmp_path / "m"), "--dry-run", *TINY]) == 0
    out = capsys.readouterr().out
    assert "4 used, 1 skipped" in out and "broken.png: zero bytes" in out and "ready to train" in out
    assert (
        main(["train", "--data", str(folder), "--out", str(tmp_path / "m"), "--dry-run", "--json", *TINY])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "preflight" and report["model"]["channels"] == 1  # guessed from grey images
    assert not (tmp_path / "m.safetensors").exists()
    png = tmp_path / "preview.png"
    args = ["train", "--data", str(folder), "--out", str(tmp_path / "m"), "--dry-run", "--preview", str(png)]
    assert main([*args, *TINY]) == 0
    with Image.open(png) as im:
        assert im.size[0] > 4 and im.mode == "RGB"


def test_train_json_lines_then_eval(tmp_path, capsys) -> None:
    folder = image_folder(tmp_path / "imgs", n=6, mode="RGB")
    out = tmp_path / "m"
    assert main(["train", "--data", str(folder), "--out", str(out), "--json", *TINY, *FAST]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "start" and kinds.count("step") == 3 and kinds[-2:] == ["done", "summary"]
    assert lines[0]["info"]["data"]["train_items"] + lines[0]["info"]["data"]["val_items"] == 6
    assert lines[-1]["final_eval"]["measure"] == "valid_bound"
    assert main(["eval", "--model", str(out) + ".safetensors", "--data", str(folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["items_used"] == 6 and result["split"] == "all"
    for key in ("nats_per_token", "bits_per_token", "bits_per_dim", "perplexity", "stderr_bits_per_dim"):
        assert isinstance(result[key], float)
    assert main(["eval", "--model", str(out) + ".safetensors", "--data", str(folder)]) == 0
    assert "bits/dim" in capsys.readouterr().out


def test_errors_are_one_line_with_status_2(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "m"), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "holds no files" in err[0]
    folder = image_folder(tmp_path / "imgs", n=3, mode="L")
    assert main(["train", "--data", str(folder), "--out", str(tmp_path / "p"), *TINY, *FAST]) == 0
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("hello")
    capsys.readouterr()
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "txt"),
            "--out",
            str(tmp_path / "c"),
            "--from",
            str(tmp_path / "p"),
        ]
    )
    assert code == 2 and "cannot fine-tune p" in capsys.readouterr().err
    assert main(["train", "--data", str(folder), "--out", str(tmp_path / "p"), *TINY, *FAST]) == 2
    assert "--resume" in capsys.readouterr().err


def _idx(arr) -> bytes:
    import struct

    return bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def test_idx_and_npz_data_train_a_model_that_loads(tmp_path, capsys) -> None:
    import gzip

    import numpy as np

    from engine.files.modelfile import load_model

    rng = np.random.default_rng(0)
    (tmp_path / "mnist").mkdir()
    digits = rng.integers(0, 256, (12, 4, 4), dtype=np.uint8)
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(digits)))
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(_idx(np.arange(12, dtype=np.uint8)))
    )
    (tmp_path / "arr").mkdir()
    np.savez(
        tmp_path / "arr" / "set.npz", x=rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), y=np.arange(10)
    )
    for folder, channels in (("mnist", 1), ("arr", 3)):
        out = tmp_path / f"m-{folder}"
        args = ["train", "--data", str(tmp_path / folder), "--out", str(out), "--json", *TINY, *FAST]
        assert main(args) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert lines[-1]["kind"] == "summary" and lines[-1]["steps_done"] == 3
        model, info = load_model(str(out) + ".safetensors")
        assert info.config.channels == channels  # guessed from the arrays
        items = info.card["data"]["train_items"] + info.card["data"]["val_items"]
        assert items == (12 if folder == "mnist" else 10)


def test_data_flags_reach_the_preflight(tmp_path, capsys) -> None:
    import numpy as np

    (tmp_path / "icons").mkdir()
    for i in range(6):
        arr = np.zeros((8, 8, 4), np.uint8)
        arr[2:6, 2:6, 3] = 255  # a black square on transparency
        Image.fromarray(arr, "RGBA").save(tmp_path / "icons" / f"i{i}.png")
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "icons" / "flat.png")
    base = ["train", "--data", str(tmp_path / "icons"), "--out", str(tmp_path / "m"), "--dry-run", *TINY]
    assert main([*base, "--background", "black"]) == 2  # every item flat on black: refused
    captured = capsys.readouterr()
    assert "every item (7) is one flat colour" in captured.out and "try another --background" in captured.err
    assert main([*base, "--json"]) == 0  # white: the squares show; only flat.png is flat
    report = json.loads(capsys.readouterr().out)
    assert report["flat_sources"] == ["flat.png"] and report["options"]["background"] == "white"
    assert report["warnings"][0].startswith("1 of 7 items (14%) are one flat colour")
    assert main([*base, "--json", "--drop-flat", "--exclude", "i0*", "--exclude", "i1*"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["items"] == 4 and report["excluded"] == 2 and report["skipped_by_reason"] == {"flat": 1}
    assert main([*base, "--include", "*.jpg"]) == 2
    assert "left out by the include/exclude patterns" in capsys.readouterr().err
    assert main([*base, "--background", "grey"]) == 2
    assert "white, black or a colour #rrggbb" in capsys.readouterr().err


def test_text_column_flag_and_training_warnings(tmp_path, capsys) -> None:
    (tmp_path / "t").mkdir()
    rows = "\n".join(f'{i},"line number {i} of the corpus"' for i in range(20))
    (tmp_path / "t" / "corpus.csv").write_text("id,text\n" + rows + "\n")
    (tmp_path / "t" / "blob").write_bytes(bytes(range(256)))
    args = ["train", "--data", str(tmp_path / "t"), "--out", str(tmp_path / "m"), "--modality", "text"]
    args += ["--seq-len", "32", "--size", "tiny", "--d-model", "16", "--n-layers", "1"]
    assert main([*args, "--dry-run", "--column", "text"]) == 0
    out = capsys.readouterr().out
    assert "[corpus.csv] line number 0 of the corpus" in out and "blob: binary" in out
    assert main([*args, "--dry-run", "--column", "body"]) == 2
    assert "no such column" in capsys.readouterr().err
    (tmp_path / "t" / "empty-lines").write_text("\n\n\n" * 40)
    assert main([*args, *FAST]) == 0  # without --column the CSV is plain text; warnings go first
    err = capsys.readouterr().err
    assert "warning:" in err and "blank" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.timeout(60)
def test_a_fifo_in_the_data_does_not_hang_the_channel_guess(tmp_path, capsys) -> None:
    folder = image_folder(tmp_path / "imgs", n=3, mode="RGB")
    os.mkfifo(folder / "pipe.png")  # Image.open on it would block for ever
    os.mkfifo(folder / "pipe")
    args = ["train", "--data", str(folder), "--out", str(tmp_path / "m"), "--json", "--dry-run"]
    assert main([*args, *[a for a in TINY]]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["channels"] == 3 and report["files_used"] == 3
    assert {s["path"]: s["reason"] for s in report["skipped"]} == {
        "pipe": "unreadable",
        "pipe.png": "unreadable",
    }


def test_training_keeps_going_when_the_data_vanishes_mid_run(tmp_path) -> None:
    import shutil

    from engine.config import ModelConfig
    from engine.training import TrainConfig
    from engine.training.loop import iter_train

    folder = image_folder(tmp_path / "imgs", n=6, mode="L")
    cfg = ModelConfig(
        modality="image", num_classes=4, height=4, width=4, channels=1, d_model=16, n_layers=1, n_heads=2
    )
    train = TrainConfig(
        steps=4, batch_size=4, eval_every=0, checkpoint_every=0, preview_every=0, device="cpu"
    )
    gen = iter_train(cfg, train, str(folder), tmp_path / "m")
    kinds = []
    try:
        while True:
            ev = next(gen)
            kinds.append(ev.kind)
            if ev.kind == "step" and folder.exists():
                shutil.rmtree(folder)  # the data folder disappears after the first step
    except StopIteration as stop:
        summary = stop.value
    assert kinds.count("step") == 4 and summary.steps_done == 4 and not folder.exists()
    assert (tmp_path / "m.safetensors").is_file()


def test_threads_flag_sets_torch_threads_and_the_start_event_names_them(
    tmp_path, capsys, monkeypatch
) -> None:
    import torch

    folder = image_folder(tmp_path / "imgs", n=4, mode="L")
    before = torch.get_num_threads()
    try:
        for flag, want in ((["--threads", "2"], 2), ([], 3)):
            monkeypatch.setenv("PRIME_THREADS", "3")  # the default path honours it; --threads wins
            out = tmp_path / f"m{want}"
            args = ["train", "--data", str(folder), "--out", str(out), "--json", *flag, *TINY, *FAST]
            assert main(args) == 0
            events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
            start = next(e for e in events if e["kind"] == "start")
            assert start["info"]["threads"] == want and torch.get_num_threads() == want
        code = main(["train", "--data", str(folder), "--out", str(tmp_path / "bad"), "--threads", "0", *TINY])
        assert code == 2 and "--threads must be >= 1" in capsys.readouterr().err
        assert not (tmp_path / "bad.safetensors").exists()
    finally:
        torch.set_num_threads(before)
