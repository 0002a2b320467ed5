"""``prime bench objectives``: which training objective to use, measured on the bundled data sets.

Each objective (the valid bound, the unweighted masked cross-entropy, the paper's surrogate)
trains the same small model from the same seed for the same number of steps (so the same time:
the objectives cost the same per step) on digits and on the KJV (``kjv-bpe``: the KJV in learned
BPE tokens). Every run is then judged the same way: the held-out valid bound (bits per dimension;
text also bits per byte, comparable across tokenizers; never the surrogate) and sample quality.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.api import SampleRequest
from engine.bench.metrics import text_quality
from engine.bench.quality import _digits_judge, _kjv_vocab
from engine.config import ModelConfig
from engine.files.convert import tokens_to_text
from engine.files.modelfile import load_model
from engine.sampling import sample
from engine.training import TRAIN_OBJECTIVES, evaluate, train
from engine.training.recipes import get_recipe


def _small(model: ModelConfig) -> ModelConfig:
    return model.replace(d_model=64, n_layers=2, n_heads=4)


def run(args: dict[str, Any]) -> dict[str, Any]:
    """Train and judge one small model per (data set, objective); ``args``: steps, families, num."""
    steps = int(args.get("steps", 1200))
    families = list(args.get("families") or ("digits", "kjv"))
    objectives = list(args.get("objectives") or TRAIN_OBJECTIVES)
    num = int(args.get("num", 128))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in families:
            recipe = get_recipe(f"{family}-prime")
            full_cfg, data = recipe.prepare()  # a BPE recipe's config carries its learned vocabulary
            model_cfg = _small(full_cfg)
            if family == "digits":
                judge, _ = _digits_judge(0)
            else:
                vocab, _ = _kjv_vocab()
            for objective in objectives:
                cfg = dataclasses.replace(
                    recipe.train,
                    steps=steps,
                    objective=objective,
                    eval_every=0,
                    preview_every=0,
                    checkpoint_every=0,
                    warmup=min(recipe.train.warmup, steps // 10),
                )
                started = time.perf_counter()
                summary = train(model_cfg, cfg, data, Path(tmp) / f"{family}-{objective}")
                seconds = time.perf_counter() - started
                model, _ = load_model(summary.model_path)
                bound = evaluate(model, data, passes=4, seed=0)
                tokens = sample(model, SampleRequest(num_samples=num, steps=64, seed=0)).tokens
                row: dict[str, Any] = {
                    "data": family,
                    "objective": objective,
                    "steps": steps,
                    "train_seconds": seconds,
                    "valid_bound_bits_per_dim": bound.bits_per_dim,
                    "stderr_bits_per_dim": bound.stderr_bits_per_dim,
                }
                if family == "digits":
                    row.update(judge.score(tokens.numpy()))
                else:
                    row["valid_bound_bits_per_byte"] = bound.bits_per_byte
                    row["stderr_bits_per_byte"] = bound.stderr_bits_per_byte
                    row.update(text_quality([tokens_to_text(t, model.tokenizer) for t in tokens], vocab))
                rows.append(row)
    return {
        "rows": rows,
        "model": "d_model 64, 2 layers, 4 heads, ell as in the -prime recipe",
        "samples": num,
        "sampling_steps": 64,
    }


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of :func:`run`'s result."""
    lines = [
        f"small model ({result['model']}), {result['samples']} samples at 64 steps per run",
        "",
        "data    objective     steps  train s  valid bound (bits/dim)  quality",
    ]
    for r in result["rows"]:
        if "mean_confidence" in r:
            q = f"confidence {r['mean_confidence']:.3f}, FD {r['frechet_distance']:.2f}"
        else:
            q = f"in-vocabulary words {r['in_vocabulary_share']:.3f}"
            if r.get("valid_bound_bits_per_byte") is not None:
                q += f", bound {r['valid_bound_bits_per_byte']:.4f} bits/byte"
        lines.append(
            f"{r['data']:<7} {r['objective']:<12} {r['steps']:>6}  {r['train_seconds']:>7.0f}  "
            f"{r['valid_bound_bits_per_dim']:.4f} ± {r['stderr_bits_per_dim']:.4f}        {q}"
        )
    return "\n".join(lines)
