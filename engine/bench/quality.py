"""``prime bench quality``: Prime vs MDM at equal NFE on the bundled models' own data, per sampler.

For each model: the valid bound on its held-out data (bits per dimension with standard error;
text: bits per token and bits per UTF-8 byte, the number byte and BPE models share), then, at each
target NFE and for each reveal strategy, samples and their quality (digits: classifier confidence,
class balance and Fréchet distance; text: in-vocabulary words and well-formed lines), actual NFE,
idle steps and wall time. A BPE text model's samples and the real held-out passages it is compared
with are decoded with that model's own vocabulary; the held-out books are the byte models'.

The ancestral sampler runs the step count whose expected NFE (with caching) reaches the target;
the confidence, margin and entropy orders reveal at every step, so they run T = target; threshold
decoding runs with the target as its step cap and makes as many calls as it needs (at most the
cap). The bound describes the model (and its ancestral sampler), not the other strategies.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from engine.api import STRATEGIES, SampleRequest
from engine.bench.metrics import DigitJudge, corpus_vocabulary, steps_for_nfe, text_quality
from engine.data.dataset import TokenData
from engine.files.convert import tokens_to_text
from engine.files.library import resolve_model
from engine.files.modelfile import load_model
from engine.sampling import sample
from engine.tokenizer import BpeTokenizer
from engine.training import evaluate

DEFAULT_MODELS = ("digits-prime", "digits-mdm", "kjv-prime", "kjv-mdm")
OPTIONAL_MODELS = ("kjv-bpe-prime", "kjv-bpe-mdm")  # compared by default once they are in the library
DEFAULT_NFE = (8, 16, 32, 64, 128)
DEFAULT_THRESHOLD = 0.9


def _digits_judge(seed: int) -> tuple[DigitJudge, Any]:
    from sklearn.datasets import load_digits

    from engine.training.recipes import digits_data

    data = digits_data()
    labels = load_digits().target
    judge = DigitJudge.fit(
        data.tokens[data.train_index],
        labels[data.train_index],
        data.tokens[data.val_index],
        labels[data.val_index],
        seed=seed,
    )
    return judge, data


def _kjv_vocab() -> tuple[set[str], Any]:
    from engine.training.recipes import KJV_VALIDATION_BOOKS, kjv_data, kjv_verses

    vocab = corpus_vocabulary([text for book, text in kjv_verses() if book not in KJV_VALIDATION_BOOKS])
    return vocab, kjv_data


def default_models() -> list[str]:
    """The bundled four, and the tokenized KJV models when the library has them."""
    names = list(DEFAULT_MODELS)
    for name in OPTIONAL_MODELS:
        try:
            resolve_model(name)
        except ValueError:
            continue
        names.append(name)
    return names


def kjv_held_out_tokens(tokenizer: BpeTokenizer, seq_len: int) -> TokenData:
    """The held-out KJV books as ids of ``tokenizer``, cut into ``seq_len`` tokens (all validation).

    Each book is encoded whole and its last piece padded with the newline token, as the BPE recipes
    do, so a model is scored on exactly the passages it would have been held out on.
    """
    from engine.training.recipes import KJV_VALIDATION_BOOKS, kjv_books, tokenized_books

    books = {b: t for b, t in kjv_books().items() if b in KJV_VALIDATION_BOOKS}
    description = {"source": "kjv", "validation_books": list(books)}
    return tokenized_books(books, tokenizer, seq_len, description, frozenset(books))


def _text_data(model: Any, make_kjv: Any) -> TokenData:
    """The KJV as ``model`` reads it: bytes, or ids of its own BPE vocabulary (held-out books only)."""
    cfg = model.config
    if model.tokenizer.kind == "bytes":
        return make_kjv(cfg.seq_len)
    return kjv_held_out_tokens(model.tokenizer, cfg.seq_len)


def _sample_all(
    model, steps: int, num: int, seed: int, batch: int, strategy: str = "ancestral", threshold: float = 0.9
) -> tuple[torch.Tensor, list[int], list[int], float]:
    tokens, nfe, idle = [], [], []
    started = time.perf_counter()
    for i, start in enumerate(range(0, num, batch)):
        n = min(batch, num - start)
        request = SampleRequest(
            num_samples=n, steps=steps, seed=seed + i, strategy=strategy, threshold=threshold
        )
        result = sample(model, request)
        tokens.append(result.tokens)
        nfe += result.nfe
        idle += result.idle_steps
    return torch.cat(tokens), nfe, idle, time.perf_counter() - started


def run(args: dict[str, Any]) -> dict[str, Any]:
    """Measure every model at every NFE and strategy.

    ``args``: models, nfe, num, seed, batch, eval_passes, strategies (default: all), threshold
    (tau of threshold decoding, default 0.9).
    """
    names = list(args.get("models") or default_models())
    targets = [int(v) for v in (args.get("nfe") or DEFAULT_NFE)]
    strategies = list(args.get("strategies") or STRATEGIES)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    tau = float(args.get("threshold", DEFAULT_THRESHOLD))
    num, seed = int(args.get("num", 256)), int(args.get("seed", 0))
    batch = int(args.get("batch", 64))
    judge = vocab = digits = None
    rows: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    text_reference: dict[tuple[int, str], dict[str, Any]] = {}  # (L, tokenizer) -> the real books' scores
    for name in names:
        model, info = load_model(resolve_model(name))
        cfg = model.config
        if cfg.modality == "image":
            if judge is None:
                judge, digits = _digits_judge(seed)
            data = digits
        else:
            if vocab is None:
                vocab, make_kjv = _kjv_vocab()
            data = _text_data(model, make_kjv)
            key = (cfg.seq_len, model.tokenizer.digest)
            if key not in text_reference:  # the ceiling: real held-out passages, decoded and judged alike
                real = [
                    tokens_to_text(torch.as_tensor(data.tokens[i].astype(np.int64)), model.tokenizer)
                    for i in data.val_index[:num]
                ]
                text_reference[key] = {
                    "seq_len": cfg.seq_len,
                    "tokenizer": model.tokenizer.kind,
                    "vocab_size": model.tokenizer.vocab_size,
                    **text_quality(real, vocab),
                }
        bound = evaluate(model, data, passes=int(args.get("eval_passes", 4)), seed=seed)
        entry: dict[str, Any] = {
            "model": name,
            "modality": cfg.modality,
            "ell": cfg.ell,
            "parameters": model.num_parameters(),
            "valid_bound_bits_per_dim": bound.bits_per_dim,
            "stderr_bits_per_dim": bound.stderr_bits_per_dim,
            "eval_items": bound.items,
            "eval_how": bound.how,
        }
        if cfg.modality == "text":
            entry.update(
                tokenizer=model.tokenizer.kind,
                vocab_size=model.tokenizer.vocab_size,
                seq_len=cfg.seq_len,
                valid_bound_bits_per_token=bound.bits_per_token,
                valid_bound_bits_per_byte=bound.bits_per_byte,
                stderr_bits_per_byte=bound.stderr_bits_per_byte,
                bytes_per_token=bound.bytes_per_token,
            )
        models.append(entry)
        subtokens = cfg.ell * cfg.seq_length
        for target, strategy in ((t, s) for t in targets for s in strategies):
            if strategy != "ancestral":  # one call per step (threshold: at most), up to one per digit
                steps, reachable = target, target <= subtokens
            else:
                try:
                    steps, reachable = steps_for_nfe(target, subtokens), True
                except ValueError:  # MDM cannot make that many calls: 4x the steps, report what it made
                    steps, reachable = 4 * target, False
            tokens, nfe, idle, seconds = _sample_all(model, steps, num, seed, batch, strategy, tau)
            row: dict[str, Any] = {
                "model": name,
                "ell": cfg.ell,
                "strategy": strategy,
                "threshold": tau if strategy == "threshold" else None,
                "target_nfe": target,
                "target_reachable": reachable,
                "steps": steps,
                "mean_nfe": float(np.mean(nfe)),
                "mean_idle_steps": float(np.mean(idle)),
                "seconds": seconds,
                "seconds_per_sample": seconds / num,
            }
            if cfg.modality == "image":
                row.update(judge.score(tokens.numpy()))
            else:
                row["valid_bound_bits_per_byte"] = bound.bits_per_byte  # the model's, at every setting
                row.update(text_quality([tokens_to_text(t, model.tokenizer) for t in tokens], vocab))
            rows.append(row)
    out: dict[str, Any] = {
        "models": models,
        "rows": rows,
        "num_samples": num,
        "seed": seed,
        "strategies": strategies,
        "threshold": tau,
        "threads": torch.get_num_threads(),
    }
    if judge is not None:
        out["digits_judge"] = {"val_accuracy": judge.val_accuracy, "real_vs_real_frechet": judge.floor()}
    if text_reference:
        out["text_reference"] = list(text_reference.values())
    return out


def _f(value: Any, digits: int = 4) -> str:
    """A number, or n/a (a standard error from one item, say)."""
    ok = isinstance(value, (int, float)) and value == value and abs(value) != float("inf")
    return f"{value:.{digits}f}" if ok else "n/a"


def format_table(result: dict[str, Any]) -> str:
    """Plain-text tables of :func:`run`'s result."""
    lines = ["model            ell  valid bound (bits/dim; text: bits/token)  items"]
    for m in result["models"]:
        lines.append(
            f"{m['model']:<16} {m['ell']:>3}  {_f(m['valid_bound_bits_per_dim'])} ± "
            f"{_f(m['stderr_bits_per_dim'])}                          {m['eval_items']}"
        )
    text_models = [m for m in result["models"] if m.get("modality") == "text"]
    if text_models:
        lines.append("")
        lines.append("text model       tokenizer         L  bytes/token  valid bound (bits/byte of the text)")
        for m in text_models:
            kind = "bytes" if m["tokenizer"] == "bytes" else f"bpe {m['vocab_size']:,}"
            lines.append(
                f"{m['model']:<16} {kind:<12} {m['seq_len']:>6}  {_f(m['bytes_per_token'], 2):>11}  "
                f"{_f(m['valid_bound_bits_per_byte'])} ± {_f(m['stderr_bits_per_byte'])}"
            )
    if "digits_judge" in result:
        j = result["digits_judge"]
        lines.append(
            f"digit classifier: held-out accuracy {j['val_accuracy']:.3f}; "
            f"real-vs-real Fréchet distance (floor) {j['real_vs_real_frechet']:.2f}"
        )
    for ref in result.get("text_reference", ()):
        unit = "byte" if ref.get("tokenizer", "bytes") == "bytes" else f"token (bpe {ref['vocab_size']:,})"
        lines.append(
            f"real held-out {ref['seq_len']}-{unit} passages ({ref['passages']}): in-vocabulary words "
            f"{_f(ref['in_vocabulary_share'], 3)}, well-formed lines {_f(ref['well_formed_line_share'], 3)}"
        )
    lines.append("")
    lines.append("model            strategy    NFE  steps  mean NFE  idle  s/sample  quality")
    for r in result["rows"]:
        if "mean_confidence" in r:
            q = (
                f"confidence {r['mean_confidence']:.3f}, confident {r['confident_share']:.2f}, "
                f"FD {r['frechet_distance']:.2f}, class entropy {r['class_balance_entropy_bits']:.2f} bits"
            )
        else:
            q = (
                f"in-vocabulary words {_f(r['in_vocabulary_share'], 3)}, "
                f"well-formed lines {_f(r['well_formed_line_share'], 3)}"
            )
            if r.get("valid_bound_bits_per_byte") is not None:
                q += f", bound {_f(r['valid_bound_bits_per_byte'])} bits/byte"
        mark = " " if r["target_reachable"] else "*"
        strategy = r.get("strategy", "ancestral")
        if r.get("threshold") is not None:
            strategy = f"tau={r['threshold']:g}"
        lines.append(
            f"{r['model']:<16} {strategy:<10} {r['target_nfe']:>3}  {r['steps']:>5}  "
            f"{r['mean_nfe']:>7.1f}{mark}  {r['mean_idle_steps']:>4.1f}  {r['seconds_per_sample']:>8.4f}  {q}"
        )
    if any(not r["target_reachable"] for r in result["rows"]):
        lines.append(
            "* this NFE cannot be reached with caching (at most one call per sub-token): the "
            "ancestral sampler ran 4x the steps, the others one step per call; mean NFE as measured"
        )
    return "\n".join(lines)
