"""The CLI says what it does (issue 16, item 12): ``info --check``, the help texts, ``--dry-run
--recipe`` and multi-sample text output. Tiny real models are made here with ``prime init``."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.cli import build_parser, main
from engine.cli.common import printable
from engine.cli.generate import PLAIN_SETTINGS
from engine.files.modelfile import DIGEST_KEY, read_model_info, tensor_digest
from engine.training.recipes import RECIPES
from tests.engine.test_cli import TINY, run

REPO = Path(__file__).resolve().parents[2]
BENCH_MODES = ("sample", "matmul", "train", "gui", "quality", "objectives", "tokenized")


def help_text(capsys: pytest.CaptureFixture[str], command: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def help_entries(text: str) -> dict[str, str]:
    """``--flag`` -> its whole help entry (option line and continuation lines), on one line."""
    entries: dict[str, str] = {}
    flag = None
    for line in text.splitlines():
        start = re.match(r"^  (--?[a-z][a-z-]*)", line)
        if start:
            flag = start.group(1)
            entries[flag] = line
        elif flag and line.startswith("    "):
            entries[flag] += " " + line.strip()
        else:
            flag = None
    return {k: " ".join(v.split()) for k, v in entries.items()}


def subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.fixture
def image_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "img.safetensors"
    code, _, err = run(
        capsys, "init", "--classes", "16", "--ell", "2", "--height", "4", *TINY, "--out", str(path)
    )
    assert code == 0, err
    return path


@pytest.fixture
def text_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "txt.safetensors"
    code, _, err = run(
        capsys, "init", "--modality", "text", "--seq-len", "12", "--ell", "2", *TINY, "--out", str(path)
    )
    assert code == 0, err
    return path


# --------------------------------------------------------------------------- info --check


def test_info_check_says_what_it_checked(image_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, plain, _ = run(capsys, "info", str(image_model))
    assert code == 0 and "check:" not in plain  # without --check nothing claims a check
    code, out, err = run(capsys, "info", str(image_model), "--check")
    assert code == 0, err
    block = out[out.index("check:") :]
    assert block.splitlines()[0].split() == ["check:", "passed;", "checked:"]
    items = [line.strip()[2:] for line in block.splitlines()[1:]]
    n_tensors = len(subparser_free_state(image_model))
    assert any(f"all {n_tensors} tensors present" in item and "shape" in item for item in items), items
    assert any("finite" in item and "NaN" in item for item in items)
    assert any("checksum" in item and "match" in item for item in items)
    assert any("builds" in item for item in items)
    assert any("forward pass" in item and "(1, 16, 16)" in item for item in items)  # L = 4x4, C = 16


def subparser_free_state(path: Path) -> list[str]:
    with safe_open(str(path), "pt") as f:
        return list(f.keys())


def test_info_check_json_carries_the_result(image_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "info", str(image_model), "--json")
    assert code == 0 and "check" not in json.loads(out)
    code, out, err = run(capsys, "info", str(image_model), "--check", "--json")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    check = json.loads(lines[0])["check"]
    assert check["ok"] is True
    assert len(check["checked"]) == 6 and all(isinstance(item, str) for item in check["checked"])


def test_info_check_reports_altered_weights(image_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with safe_open(str(image_model), "pt") as f:
        metadata = f.metadata()
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    name = next(key for key, value in tensors.items() if value.is_floating_point())
    tensors[name] = tensors[name] + 0.5  # finite and well shaped: only the checksum can tell
    save_file(tensors, str(image_model), metadata=metadata)
    code, out, err = run(capsys, "info", str(image_model))
    assert code == 0  # the header alone is fine
    code, out, err = run(capsys, "info", str(image_model), "--check", "--json")
    assert code == 2
    check = json.loads(out)["check"]
    assert check["ok"] is False and "checksum" in check["error"]
    assert err.startswith("error: ") and "checksum" in err
    code, out, err = run(capsys, "info", str(image_model), "--check")
    assert code == 2 and out == "" and "checksum" in err


def test_info_check_runs_the_network(image_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Finite weights that overflow in the network: only the forward pass can tell."""
    with safe_open(str(image_model), "pt") as f:
        metadata = f.metadata()
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    head = next(key for key in tensors if key.startswith("head.") and key.endswith("weight"))
    tensors[head] = torch.full_like(tensors[head], 3e38)  # finite, but the logits overflow to inf
    metadata[DIGEST_KEY] = tensor_digest(tensors)  # a consistent file: the checksum matches
    save_file(tensors, str(image_model), metadata=metadata)
    code, out, err = run(capsys, "info", str(image_model), "--check", "--json")
    assert code == 2, out
    check = json.loads(out)["check"]
    assert check == {"ok": False, "error": check["error"]} and "forward pass" in check["error"]
    assert "non-finite" in check["error"]


def test_info_check_bounds_the_forward_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "long.safetensors"
    code, _, err = run(capsys, "init", "--modality", "text", "--seq-len", "8192", *TINY, "--out", str(path))
    assert code == 0, err  # rotary positions: a long model with few weights
    code, out, err = run(capsys, "info", str(path), "--check", "--json")
    assert code == 0, err
    checked = json.loads(out)["check"]["checked"]
    assert checked[-1].startswith("no forward pass: its attention scores (2 heads x 8,192^2 tokens)")


# --------------------------------------------------------------------------- help texts


def test_bench_help_lists_and_explains_every_mode(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "bench")
    modes = text[text.index("\nmodes") :]
    for mode in BENCH_MODES:
        match = re.search(rf"^  {mode} +(\S.{{30,}})$", modes, re.MULTILINE)
        assert match, f"{mode} is not explained in 'prime bench --help':\n{modes}"
    assert set(subparser("bench")._option_string_actions) >= {"--json"}
    positional = next(a for a in subparser("bench")._actions if a.dest == "mode")
    assert tuple(positional.choices) == BENCH_MODES


def test_readme_bench_row_names_every_mode() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `prime bench"))
    listed = re.search(r"prime bench \[([^\]]+)\]", row).group(1).replace("\\|", "|").split("|")
    assert tuple(listed) == BENCH_MODES


def readme_generate_synopsis() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### `prime generate`") :]
    block = section[section.index("```") + 3 :]
    return block[: block.index("```")]


def test_generate_help_shows_the_defaults_readme_shows(capsys: pytest.CaptureFixture[str]) -> None:
    synopsis = readme_generate_synopsis()
    assert synopsis.count("prime generate") == 3
    actions = subparser("generate")._option_string_actions
    entries = help_entries(help_text(capsys, "generate"))
    shown = re.findall(r"\[(--[a-z-]+) ([^\]\s]+)\]", synopsis)
    literal = 0
    for flag, value in shown:
        assert flag in actions, f"README shows {flag}, which 'prime generate' does not have"
        action = actions[flag]
        # sampler flags default to None (the model's recommendation or PLAIN_SETTINGS fills them in)
        default = PLAIN_SETTINGS.get(action.dest) if action.default is None else action.default
        if re.fullmatch(r"-?\d+(\.\d+)?", value):  # a number: the default, as README shows it
            literal += 1
            assert default == type(default)(value), (flag, value, default)
            assert isinstance(default, float) == ("." in value), (flag, value)
            assert f"default {value}" in entries[flag], (flag, entries[flag])
        elif "|" in value:  # the choices, the default first
            first = value.split("|")[0]
            assert default == first, (flag, value, default)
            if action.choices is not None:
                assert value.split("|") == list(action.choices), (flag, value)
            assert f"default {first}" in entries[flag], (flag, entries[flag])
        elif value.isupper() or "," in value:  # a metavar (N, T0, TAU, X,Y,W,H): no default claimed
            continue
        else:  # an example file name, never a default
            assert action.default is None, (flag, value)
    assert literal >= 8


def test_every_generate_option_with_a_default_states_it(capsys: pytest.CaptureFixture[str]) -> None:
    entries = help_entries(help_text(capsys, "generate"))
    for action in subparser("generate")._actions:
        if not action.option_strings or action.help is None or action.nargs == 0:
            continue
        if action.default is not None:
            flag = action.option_strings[0]
            assert "default" in entries[flag], (flag, entries[flag])
    seed = next(a for a in subparser("generate")._actions if a.dest == "seed")
    assert seed.help and "one random stream" in seed.help and "default 0" in seed.help


def test_train_help_lists_the_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "train")
    listing = text[text.index("\nrecipes") :]
    for name, recipe in RECIPES.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(recipe.summary)}$", listing, re.MULTILINE), name
    code, _, err = run(capsys, "train", "--recipe", "no-such-recipe", "--out", "x")
    assert code == 2 and "digits-prime" in err


# --------------------------------------------------------------------------- --dry-run --recipe


def test_dry_run_works_with_a_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    out = tmp_path / "digits"
    base = ["train", "--recipe", "digits-prime", "--out", str(out), "--dry-run"]
    code, text, err = run(capsys, *base)
    assert code == 0, err
    assert text.splitlines()[0] == "data: recipe digits-prime (image)"
    assert (
        "8x8 grey images, 17 levels" in text and "1797 items (1500 for training, 297 for validation)" in text
    )
    assert "load_digits" in text and text.rstrip().endswith("ready to train")
    code, line, err = run(capsys, *base, "--json", "--preview-count", "4")
    assert code == 0, err
    report = json.loads(line)
    assert report["kind"] == "preflight" and report["ok"] is True and report["problem"] is None
    assert (report["items"], report["train_items"], report["val_items"]) == (1797, 1500, 297)
    tokens = torch.tensor(report["preview_tokens"])
    assert tokens.shape == (4, 64) and int(tokens.max()) <= 16
    png = tmp_path / "preview.png"
    assert main([*base, "--preview", str(png)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    assert not out.with_suffix(".safetensors").exists()  # a dry run trains and writes nothing


# --------------------------------------------------------------------------- multi-sample text


def test_multi_sample_text_is_separated_with_the_batch_seed(
    text_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.txt"
    argv = [
        "generate",
        "--model",
        str(text_model),
        "--out",
        str(out),
        "--num",
        "3",
        "--steps",
        "4",
        "--seed",
        "7",
    ]
    code, text, err = run(capsys, *argv)
    assert code == 0, err
    code, line, err = run(capsys, *argv, "--json")
    texts = json.loads(line)["texts"]
    assert len(texts) == 3
    lines = text.split("\n")
    heads = [i for i, ln in enumerate(lines) if ln.startswith("--- sample ")]
    assert [lines[i] for i in heads] == [f"--- sample {k} of 3 (seed 7, --num 3) ---" for k in (1, 2, 3)]
    ends = [*heads[1:], lines.index("---", heads[-1])]
    for k, (start, end) in enumerate(zip(heads, ends, strict=True)):
        assert "\n".join(lines[start + 1 : end]) == printable(texts[k])  # each sample under its own line
    assert lines[ends[-1] + 1].startswith("text: ")  # the summary after the closing rule
    body = out.read_text(encoding="utf-8")
    assert body.count("--- sample ") == 3 and "--- sample 2 of 3 (seed 7, --num 3) ---\n" + texts[1] in body
    # the seed stated is the batch's, not an invented per-sample one: seed 8 alone is not sample 2
    _, other, _ = run(capsys, *argv[:5], "--num", "1", "--steps", "4", "--seed", "8", "--json")
    assert json.loads(other)["texts"][0] != texts[1]


def test_single_sample_text_has_no_separator(text_model: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "one.txt"
    code, text, err = run(capsys, "generate", "--model", str(text_model), "--out", str(out), "--steps", "4")
    assert code == 0, err
    assert "--- sample" not in text and "--- sample" not in out.read_text(encoding="utf-8")


def test_a_recipe_variant_records_its_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    out = tmp_path / "variant"
    flags = ["--ell", "4", "--dropout", "0", "--steps", "2", "--eval-every", "0", "--preview-every", "0"]
    code, _, err = run(capsys, "train", "--recipe", "digits-prime", *flags, "--out", str(out))
    assert code == 0, err
    info = read_model_info(str(out) + ".safetensors")
    assert (info.config.ell, info.config.base, info.config.dropout) == (4, 3, 0.0)
    assert RECIPES["digits-prime"].model.dropout == 0.1  # the recipe itself is untouched
    assert info.card["recipe"] == "digits-prime" and info.card["recipe_overrides"] == {
        "ell": 4,
        "dropout": 0.0,
        "steps": 2,  # a training flag that changes what is learned (--eval-every does not)
    }
    assert (
        info.card["reproduce"]
        == "prime train --recipe digits-prime --ell 4 --dropout 0 --steps 2 --out digits-prime.safetensors"
    )
    assert info.card["sampler"] == RECIPES["digits-prime"].sampler
    # a fine-tuned model keeps its parent's digits and dropout
    code, _, err = run(
        capsys,
        "train",
        "--data",
        str(tmp_path),
        "--from",
        str(out) + ".safetensors",
        "--ell",
        "2",
        "--out",
        str(tmp_path / "ft"),
    )
    assert code == 2 and "keeps its parent's --ell and --dropout" in err
