"""``prime bench tokenized``: how to set up a tokenized text model, measured on the KJV.

The bundled tokenized KJV pair had to pick a vocabulary size, ``ell`` and whether to shuffle
token ids (Prime-v2). This bench trains the same small backbone from the same seed for the same
steps under each setting and judges every run alike: the held-out valid bound in bits per byte of
the UTF-8 text (comparable across vocabularies; never the surrogate), the share of generated
words that are words of the training books, and training seconds.

Settings are strings ``V:ell[:shuffle]``, e.g. ``8192:2`` or ``8192:2:shuffle``; a shuffled run
permutes the token ids with a fixed seed before encoding, so ids are no longer in BPE's
frequency order and the leading digit no longer groups frequent tokens together.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.api import SampleRequest
from engine.bench.metrics import corpus_vocabulary, text_quality
from engine.files.convert import tokens_to_text
from engine.files.modelfile import load_model
from engine.sampling import sample
from engine.training import evaluate, train
from engine.training.recipes import KJV_VALIDATION_BOOKS, get_recipe, kjv_bpe_data, kjv_verses

DEFAULT_SETTINGS = ("4096:2", "8192:1", "8192:2", "8192:2:shuffle", "8192:4")
SHUFFLE_SEED = 0


def parse_setting(text: str) -> tuple[int, int, bool]:
    """``V:ell[:shuffle]`` -> (V, ell, shuffle); ValueError naming the problem."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "shuffle"):
        raise ValueError(f"a setting is V:ell or V:ell:shuffle (e.g. 8192:2:shuffle), got {text!r}")
    try:
        vocab, ell = int(parts[0]), int(parts[1])
    except ValueError:
        raise ValueError(f"V and ell must be integers in {text!r}") from None
    if not 257 <= vocab <= 65536 or not 1 <= ell <= 16:
        raise ValueError(f"V must be in 257..65536 and ell in 1..16, got {text!r}")
    return vocab, ell, len(parts) == 3


def run(args: dict[str, Any]) -> dict[str, Any]:
    """Train and judge one small model per setting; ``args``: settings, steps, num, d_model, layers."""
    settings = [parse_setting(s) for s in (args.get("settings") or DEFAULT_SETTINGS)]
    steps = int(args.get("steps", 300))
    num = int(args.get("num", 16))
    d_model = int(args.get("d_model", 128))
    n_layers = int(args.get("n_layers", 2))
    recipe = get_recipe("kjv-bpe-prime")
    bad = [f"ell={ell}" for _, ell, _ in settings if d_model % ell]
    if bad:
        raise ValueError(f"d_model {d_model} must be a multiple of every ell; not of {', '.join(bad)}")
    vocab_words = corpus_vocabulary([v for b, v in kjv_verses() if b not in KJV_VALIDATION_BOOKS])
    rows = []
    data_cache: dict[int, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for vocab, ell, shuffle in settings:
            if vocab not in data_cache:
                data_cache[vocab] = kjv_bpe_data(recipe.model.seq_len, vocab)
            data = data_cache[vocab]
            tok = data.vocabulary
            perm = (
                tuple(int(v) for v in np.random.default_rng(SHUFFLE_SEED).permutation(tok.vocab_size))
                if shuffle
                else None
            )
            cfg = recipe.model.replace(
                ell=ell,
                num_classes=tok.vocab_size,
                vocabulary=tok,
                d_model=d_model,
                n_layers=n_layers,
                permutation=perm,
            )
            tc = dataclasses.replace(
                recipe.train,
                steps=steps,
                eval_every=0,
                preview_every=0,
                checkpoint_every=0,
                warmup=min(recipe.train.warmup, steps // 10),
            )
            name = f"{vocab}-{ell}{'-shuffle' if shuffle else ''}"
            started = time.perf_counter()
            summary = train(cfg, tc, data, Path(tmp) / name)
            seconds = time.perf_counter() - started
            model, _ = load_model(summary.model_path)
            bound = evaluate(model, data, passes=2, seed=0)
            tokens = sample(model, SampleRequest(num_samples=num, steps=64, seed=0)).tokens
            quality = text_quality([tokens_to_text(t, model.tokenizer) for t in tokens], vocab_words)
            rows.append(
                {
                    "vocab": tok.vocab_size,
                    "ell": ell,
                    "base": model.codec.base,
                    "shuffle": shuffle,
                    "steps": steps,
                    "train_seconds": seconds,
                    "bytes_per_token": tok.trained_bytes_per_token,
                    "bits_per_byte": bound.bits_per_byte,
                    "stderr_bits_per_byte": bound.stderr_bits_per_byte,
                    "in_vocabulary_share": quality["in_vocabulary_share"],
                    "well_formed_line_share": quality["well_formed_line_share"],
                }
            )
    return {
        "rows": rows,
        "model": f"d_model {d_model}, {n_layers} layers, {recipe.model.n_heads} heads, "
        f"{recipe.model.seq_len}-token passages, batch {recipe.train.batch_size}",
        "samples": num,
        "sampling_steps": 64,
    }


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of :func:`run`'s result."""
    lines = [
        f"small model ({result['model']}); {result['samples']} samples at 64 steps per run",
        "",
        "vocab  ell  base  shuffle  steps  train s  bytes/token  bound (bits/byte)  real words  good lines",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['vocab']:>5}  {r['ell']:>3}  {r['base']:>4}  {'yes' if r['shuffle'] else 'no':>7}  "
            f"{r['steps']:>5}  {r['train_seconds']:>7.0f}  {r['bytes_per_token']:>11.2f}  "
            f"{r['bits_per_byte']:.3f} ± {r['stderr_bits_per_byte']:.3f}      "
            f"{r['in_vocabulary_share']:>10.3f}  {r['well_formed_line_share']:>10.3f}"
        )
    return "\n".join(lines)
