"""``prime train`` and ``prime eval`` through the real CLI entry point."""

from __future__ import annotations

import json

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
