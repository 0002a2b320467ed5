"""Mutation fuzzing of model files and training checkpoints: a clear refusal or a valid load, bounded.

A tiny model file and a tiny checkpoint are mutated (bit flips, truncation, header JSON edits:
huge, float, NaN, negative, nested and wrongly typed values, shape, dtype and offset edits, deleted
entries). Each variant goes through what a user can do with such a file: for a model ``prime info
--check``, ``load_model``, ``prime generate``, ``import_model`` and the library listing (with a good
model beside it, which must stay listed); for a checkpoint ``checkpoint_state``, ``read_checkpoint``
and a ``--resume``. Every outcome must be a load or a refusal with a clear message
(``ModelFileError``, ``CheckpointError``, another ``ValueError`` or ``prime``'s exit status 2 without
"unexpected"). Cases run in batches in subprocesses with an address-space limit (RLIMIT_AS) and a
per-case alarm, so a case that allocates without bound or hangs is caught and counted.

``python -m tests.engine.test_fuzz [--cases N] [--seed S]`` prints the figures that
docs/ROBUSTNESS.md reports.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 3 * 2**30  # address space of a worker (torch and the engine take about 0.65 GB)
CASE_SECONDS = 20  # a case that takes longer counts as hung
SEED = 20261201
MODEL_CASES = 200
CHECKPOINT_CASES = 100

CONFIG_FIELDS = (
    "d_model", "n_layers", "n_heads", "mlp_ratio", "height", "width", "channels", "num_classes", "ell",
    "seq_len", "schedule_power", "dropout", "permutation", "positions", "schedule", "modality",
)  # fmt: skip
HOSTILE_VALUES: list[Any] = [
    10**12, 10**6, 4096, 10**9, -5, 0, 1, 128.0, 2.0, 17.5, math.nan, math.inf, True, "16", None, [], {},
    [1] * 20, 1e308, -1e308, 2**63,
]  # fmt: skip


# --------------------------------------------------------------------------- the originals


def _tiny_files(folder: Path) -> tuple[Path, Path]:
    """A tiny model file and a tiny training checkpoint (made by 2 real training steps)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from engine.files.modelfile import load_model, save_model
    from engine.training import train
    from tests.engine.training._tiny import FAST, IMG, pattern_data

    summary = train(IMG, FAST.replace(steps=2), pattern_data(), folder / "orig")
    # the same bytes on every run (no creation time or wall time), so the figures reproduce
    model = Path(summary.model_path)
    save_model(model, load_model(model)[0], {"created": "2026-12-01T00:00:00+00:00", "app_version": "fuzz"})
    ckpt = Path(summary.checkpoint_path)
    with safe_open(str(ckpt), framework="pt") as handle:
        meta = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    state = json.loads(meta["state"])
    state["wall_s"] = 1.0
    save_file(tensors, str(ckpt), metadata=dict(meta, state=json.dumps(state)))
    return model, ckpt


def _split(raw: bytes) -> tuple[dict[str, Any], bytes]:
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _join(header: dict[str, Any], data: bytes) -> bytes:
    text = json.dumps(header, allow_nan=True, sort_keys=True).encode()  # canonical: safetensors' order varies
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def mutate(raw: bytes, rng: random.Random, checkpoint: bool) -> tuple[str, bytes]:
    """One hostile variant of a safetensors file: (what was done, the bytes)."""
    header, data = _split(raw)
    meta = header.setdefault("__metadata__", {})
    tensors = [k for k in header if k != "__metadata__"]
    kind = rng.choice(
        ["bitflip", "bitflip", "bitflip", "truncate", "header_len", "config", "config", "card", "deep",
         "shape", "dtype", "offsets", "drop", "bigmeta", "digest"]
        + (["state", "state", "optim", "nan"] if checkpoint else [])
    )  # fmt: skip
    if kind == "bitflip":
        out = bytearray(raw)
        start = 8 + struct.unpack("<Q", raw[:8])[0] if rng.random() < 0.75 else 0
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(start, len(out))
            out[pos] ^= 1 << rng.randrange(8)
        return f"bitflip@{start}", bytes(out)
    if kind == "truncate":
        return "truncate", raw[: rng.randrange(0, len(raw))]
    if kind == "header_len":
        value = rng.choice([0, 1, 7, 2**40, 2**63, len(raw), len(raw) - 8])
        return f"header_len={value}", struct.pack("<Q", value) + raw[8:]
    config_key = "model_config" if checkpoint else "config"
    if kind == "config" and config_key in meta:
        cfg = json.loads(meta[config_key])
        name, value = rng.choice(CONFIG_FIELDS), rng.choice(HOSTILE_VALUES)
        cfg[name] = value
        meta[config_key] = json.dumps(cfg, allow_nan=True)
        return f"config.{name}={value!r}"[:80], _join(header, data)
    if kind == "card":
        key = "card" if not checkpoint else rng.choice(["data", "parent", "train_config"])
        value = rng.choice(
            [
                '{"metrics": {"valid_bound": {"bits_per_dim": "1.5"}}}',
                '{"metrics": {"valid_bound": {"bits_per_dim": NaN, "perplexity": Infinity}}}',
                '{"\\u001b]0;owned\\u0007<img src=\\"/dev/zero\\">": "\\u001b[31mred"}',
                '{"steps": [1, 2], "training": "x"}',
                "[1, 2, 3]",
                "17",
                '"text"',
                "{" * 3,
                json.dumps({"notes": "x" * 5_000_000}),
                '{"lr": 10.0, "steps": -5, "batch_size": 3.5}',
            ]
        )
        meta[key] = value
        return f"{key}={value[:40]!r}", _join(header, data)
    if kind == "deep":
        key = rng.choice([config_key, "card" if not checkpoint else "state"])
        depth = rng.choice([40, 1000, 100_000])
        meta[key] = _deep(depth) if rng.random() < 0.5 else '{"a": ' * depth + "1" + "}" * depth
        return f"deep {key} x{depth}", _join(header, data)
    if kind == "shape":
        name = rng.choice(tensors)
        shape = list(header[name]["shape"])
        edit = rng.choice(["swap", "double", "extra", "zero", "huge", "negative"])
        if edit == "swap" and len(shape) >= 2:
            shape[0], shape[1] = shape[1], shape[0]
        elif edit == "double" and shape:
            shape[0] *= 2
        elif edit == "extra":
            shape.append(1)
        elif edit == "zero" and shape:
            shape[0] = 0
        elif edit == "huge" and shape:
            shape[0] = 2**40
        elif edit == "negative" and shape:
            shape[0] = -1
        header[name]["shape"] = shape
        return f"shape {name} {edit}", _join(header, data)
    if kind == "dtype":
        name = rng.choice(tensors)
        header[name]["dtype"] = rng.choice(["I32", "F16", "U8", "BOOL", "F64", "XX"])
        return f"dtype {name} {header[name]['dtype']}", _join(header, data)
    if kind == "offsets":
        name = rng.choice(tensors)
        begin, end = header[name]["data_offsets"]
        header[name]["data_offsets"] = rng.choice(
            [[0, end - begin], [begin, end + 4], [end, begin], [0, 2**62]]
        )
        return f"offsets {name}", _join(header, data)
    if kind == "drop":
        keys = list(meta) + tensors
        name = rng.choice(keys)
        if name in meta:
            del meta[name]
        else:
            del header[name]
        return f"drop {name}", _join(header, data)
    if kind == "bigmeta":
        meta["junk"] = "y" * rng.choice([10, 1_000_000, 20_000_000])
        return "bigmeta", _join(header, data)
    if kind == "digest":
        key = "digest" if checkpoint else "weights_digest"
        meta[key] = rng.choice(["blake2b-256:" + "0" * 64, "md5:1", "", "blake2b-256:"])
        return f"digest={meta[key][:16]}", _join(header, data)
    if kind == "state" and "state" in meta:
        state = json.loads(meta["state"])
        field = rng.choice(["step", "samples_seen", "wall_s", "init_digest"])
        state[field] = rng.choice([10**9, -5, 1.5, "x", None, math.nan, 10**30])
        meta["state"] = json.dumps(state, allow_nan=True)
        return f"state.{field}={state[field]!r}", _join(header, data)
    if kind == "optim" and "optim" in meta:
        meta["optim"] = rng.choice(['{"param_groups": 3}', "[]", '{"scalars": {"0": {"step": "x"}}}', "{}"])
        return f"optim={meta['optim'][:30]}", _join(header, data)
    if kind == "nan":
        name = rng.choice([t for t in tensors if t.startswith(("model/", "ema/"))] or tensors)
        begin, _ = header[name]["data_offsets"]
        out = bytearray(data)
        out[begin : begin + 4] = struct.pack("<f", math.nan)
        return f"nan {name}", _join(header, bytes(out))
    return "unchanged", raw


# --------------------------------------------------------------------------- the worker


class _Hung(BaseException):
    """Raised by the per-case alarm."""


def _outcome(call: Any) -> tuple[str, str]:
    """("loaded" | "refused" | "crashed", detail) of one operation."""
    from engine.files.modelfile import ModelFileError

    try:
        call()
    except (ModelFileError, ValueError) as exc:  # CheckpointError, TrainingError, DataError are ValueErrors
        return "refused", f"{type(exc).__name__}: {str(exc)[:160]}"
    except _Hung:
        raise
    except MemoryError:
        return "crashed", "MemoryError"
    except Exception as exc:  # noqa: BLE001 - what the fuzzer is looking for
        return "crashed", f"{type(exc).__name__}: {str(exc)[:160]}"
    return "loaded", ""


def _cli(*argv: str) -> None:
    """Run ``prime`` in process; exit status 2 without "unexpected" is a clear refusal."""
    from engine.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    text = err.getvalue().strip()
    if code == 0:
        return
    if code == 2 and text.startswith("error: ") and "unexpected" not in text:
        raise ValueError(text)
    raise RuntimeError(f"exit status {code}: {text[:200]}")


def _model_ops(path: Path, work: Path) -> dict[str, tuple[str, str]]:
    from engine.files.library import import_model, list_models, remove_model, user_models_dir
    from engine.files.modelfile import load_model

    results = {}
    results["info"] = _outcome(lambda: _cli("info", str(path), "--check", "--json"))
    results["load"] = _outcome(lambda: load_model(path))
    out = work / "g.png"
    results["generate"] = _outcome(
        lambda: _cli("generate", "--model", str(path), "--out", str(out), "--steps", "2", "--json")
    )

    def do_import() -> None:
        try:
            import_model(path, name="imported")
        finally:
            with contextlib.suppress(ValueError):
                remove_model("imported")

    results["import"] = _outcome(do_import)

    def listing() -> None:
        placed = user_models_dir() / "fuzzed.safetensors"
        placed.write_bytes(path.read_bytes())
        try:
            entries = {e.name: e for e in list_models()}
            if "good" not in entries or entries["good"].info is None:
                raise RuntimeError("a fuzzed file hid the good model from the listing")
            if "fuzzed" not in entries:
                raise RuntimeError("the fuzzed file is not listed")
            if entries["fuzzed"].error is not None:
                raise ValueError(entries["fuzzed"].error)
        finally:
            placed.unlink()

    results["list"] = _outcome(listing)
    return results


def _checkpoint_ops(path: Path, work: Path) -> dict[str, tuple[str, str]]:
    from engine.training import train
    from engine.training.checkpoint import checkpoint_state, read_checkpoint
    from tests.engine.training._tiny import FAST, IMG, pattern_data

    results = {}
    results["state"] = _outcome(lambda: checkpoint_state(path))
    results["read"] = _outcome(lambda: read_checkpoint(path))
    run = work / "run"
    run.mkdir(exist_ok=True)
    (run / "m.ckpt.safetensors").write_bytes(path.read_bytes())
    results["resume"] = _outcome(
        lambda: train(IMG, FAST.replace(steps=3), pattern_data(), run / "m", resume=True)
    )
    return results


def worker() -> None:
    """Read {"cases": [[id, kind, path], ...], "good": PATH} on stdin; print one JSON line per case."""
    import resource
    import signal

    import torch

    torch.set_num_threads(1)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    job = json.loads(sys.stdin.read())
    from engine.files.library import user_models_dir

    (user_models_dir() / "good.safetensors").write_bytes(Path(job["good"]).read_bytes())

    def alarm(signum: int, frame: Any) -> None:
        raise _Hung

    signal.signal(signal.SIGALRM, alarm)
    for case_id, kind, path in job["cases"]:
        print(json.dumps({"id": case_id, "started": True}), flush=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            signal.alarm(CASE_SECONDS)
            try:
                ops = _model_ops if kind == "model" else _checkpoint_ops
                results = ops(Path(path), Path(work))
            except _Hung:
                results = {"all": ("hung", f"over {CASE_SECONDS} s")}
            finally:
                signal.alarm(0)
        seconds = time.perf_counter() - started
        print(json.dumps({"id": case_id, "results": results, "seconds": seconds}), flush=True)


# --------------------------------------------------------------------------- the campaign


def campaign(folder: Path, model_cases: int, checkpoint_cases: int, seed: int) -> dict[str, Any]:
    """Make the variants, run them in bounded worker processes; the figures and every non-clean case."""
    model, ckpt = _tiny_files(folder)
    rng = random.Random(seed)
    cases: list[tuple[int, str, str, str]] = []  # (id, kind, path, what)
    for kind, source, count in (("model", model, model_cases), ("checkpoint", ckpt, checkpoint_cases)):
        raw = _join(*_split(source.read_bytes()))  # the same bytes on every run
        for _ in range(count):
            what, data = mutate(raw, rng, checkpoint=kind == "checkpoint")
            case_id = len(cases)
            path = folder / f"case{case_id:04d}.safetensors"
            path.write_bytes(data)
            cases.append((case_id, kind, str(path), what))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "PRIME_STUDIO_HOME": str(folder / "home"),
    }
    results: dict[int, dict[str, Any]] = {}
    pending = list(cases)
    while pending:
        job = {"cases": [[c[0], c[1], c[2]] for c in pending], "good": str(model)}
        proc = subprocess.run(
            [sys.executable, "-c", "from tests.engine.test_fuzz import worker; worker()"],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60 + CASE_SECONDS * 2 * len(pending),
        )
        started = None
        for line in proc.stdout.splitlines():
            record = json.loads(line)
            if "results" in record:
                results[record["id"]] = record
                started = None
            else:
                started = record["id"]
        done = {c[0] for c in pending if c[0] in results}
        if started is not None and started not in results:  # the worker died in this case
            why = f"worker died (exit status {proc.returncode}): {proc.stderr.strip()[-200:]}"
            results[started] = {"id": started, "results": {"all": ("crashed", why)}, "seconds": 0.0}
            done.add(started)
        if not done:
            raise RuntimeError(f"the fuzz worker failed to start: {proc.stderr[-2000:]}")
        pending = [c for c in pending if c[0] not in done]
    counts = {"tried": len(cases), "refused": 0, "loaded": 0, "crashed": 0, "hung": 0}
    operations = {"refused": 0, "loaded": 0, "crashed": 0, "hung": 0}
    bad = []
    loaded: dict[str, int] = {}
    for case_id, kind, _, what in cases:
        outcomes = results[case_id]["results"]
        kinds = {v[0] for v in outcomes.values()}
        for value in outcomes.values():
            operations[value[0]] += 1
        verdict = (
            "hung"
            if "hung" in kinds
            else "crashed"
            if "crashed" in kinds
            else ("loaded" if kinds == {"loaded"} else "refused")
        )
        counts[verdict] += 1
        if verdict == "loaded":
            loaded[f"{kind}: {what.split('@')[0]}"[:60]] = (
                loaded.get(f"{kind}: {what.split('@')[0]}"[:60], 0) + 1
            )
        if verdict in ("hung", "crashed"):
            bad.append({"case": case_id, "file": kind, "mutation": what, "outcomes": outcomes})
    slowest = max(r["seconds"] for r in results.values())
    return {
        "cases": counts,
        "operations": operations,
        "slowest_case_s": round(slowest, 3),
        "loaded_mutations": dict(sorted(loaded.items())),
        "bad": bad,
    }


def test_fuzzed_model_files_and_checkpoints_are_refused_or_loaded_within_bounds(tmp_path: Path) -> None:
    started = time.perf_counter()
    report = campaign(tmp_path, MODEL_CASES, CHECKPOINT_CASES, SEED)
    seconds = time.perf_counter() - started
    assert report["bad"] == [], json.dumps(report["bad"][:5], indent=1)
    cases = report["cases"]
    assert cases["tried"] == MODEL_CASES + CHECKPOINT_CASES
    assert cases["refused"] > cases["tried"] // 2  # the mutations do hit: most variants are refused
    assert cases["loaded"] > 0  # and harmless ones (a flipped bit in the card text, say) still load
    assert seconds < 120, f"the campaign took {seconds:.0f} s"


def test_the_fuzzer_catches_a_crash_and_a_hang(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The classification can fail: a TypeError is a crash, an alarm is a hang."""
    assert _outcome(lambda: int([]))[0] == "crashed"  # type: ignore[call-overload]
    assert _outcome(lambda: int("x"))[0] == "refused"
    assert _outcome(lambda: None)[0] == "loaded"
    with pytest.raises(_Hung):
        _outcome(lambda: (_ for _ in ()).throw(_Hung()))


def main() -> None:
    """Print the campaign's figures (docs/ROBUSTNESS.md)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=MODEL_CASES)
    parser.add_argument("--checkpoints", type=int, default=CHECKPOINT_CASES)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        report = campaign(Path(folder), args.models, args.checkpoints, args.seed)
        report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
