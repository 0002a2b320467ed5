"""Evaluation: the valid bound (never the surrogate) on held-out data, with a standard error.

For item i of n, t_i is stratified over all n evaluated items, t_i = (perm(i) + u_i) / n,
clipped to [1e-4, 1], and y_t is drawn once; the item's bound estimate is
``valid_bound(logits, y_t, x0, t_i)`` (nats per sequence). Its mean over items estimates
E_t[...] = the bound on -log p(x); the standard error is std / sqrt(n). ``passes`` > 1 repeats
this with fresh (t, y_t) and averages, shrinking the error. Everything is seeded, so two
evaluations of the same weights give the same number.

Text models also get bits per byte: the bound summed over the evaluated items divided by ln 2
times the UTF-8 bytes those items decode to with the model's tokenizer (padding included; for a
byte model bytes = tokens, so bits per byte = bits per token). Its standard error is the delta
method's for a ratio of sums over items. A byte model and a BPE model scored on the same books
are compared by this number, not by bits per token.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.data import TokenData
from engine.device import autocast
from engine.models import PrimeModel
from engine.prime import add_noise, valid_bound
from engine.training.events import EvalResult

T_MIN = 1e-4


SPLITS = ("validation", "train", "all")


def token_byte_lengths(model: PrimeModel) -> np.ndarray:
    """(C,) int64: how many UTF-8 bytes each token of a text model stands for (ones for bytes)."""
    tok = model.tokenizer
    return np.fromiter((len(tok.token_bytes(i)) for i in range(tok.vocab_size)), np.int64, tok.vocab_size)


def _check_vocabulary(model: PrimeModel, data: TokenData) -> None:
    """Refuse tokens of one BPE vocabulary scored by a model of another (the ids would mean other text)."""
    held = getattr(data, "vocabulary", None)
    if model.config.modality != "text" or held is None:
        return
    if held.digest != model.tokenizer.digest:
        raise ValueError(
            f"the data is tokenized with vocabulary {held.digest} but the model uses "
            f"{model.tokenizer.digest}; tokenize the data with the model's own vocabulary (model.config)"
        )


def _ratio_stderr(num: np.ndarray, den: np.ndarray) -> float:
    """Delta-method standard error of sum(num) / sum(den) over n independent items."""
    n = len(num)
    if n < 2 or den.sum() <= 0:
        return float("nan")
    r = num.sum() / den.sum()
    resid = num - r * den
    return float(math.sqrt((resid**2).sum() / (n * (n - 1))) / den.mean())


def _items(data: TokenData, split: str, max_items: int | None) -> tuple[np.ndarray, str]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "all":
        index = np.arange(len(data), dtype=np.int64)
    elif split == "train" or not len(data.val_index):
        index, split = data.train_index, "train"
    else:
        index = data.val_index
    if max_items is not None and max_items > 0:
        index = index[:max_items]
    return index, split


@torch.no_grad()
def evaluate(
    model: PrimeModel,
    data: TokenData,
    *,
    batch_size: int = 32,
    max_items: int | None = None,
    passes: int = 1,
    seed: int = 0,
    bf16: bool | None = None,
    weights: str = "model",
    split: str = "validation",
) -> EvalResult:
    """The valid bound of ``model`` on ``data``'s validation items (training items if none).

    ``split`` = "all" evaluates every item (a data set that was not used for training).

    Args:
        model: a :class:`PrimeModel` (its device is used; it is put in eval mode and restored).
        data: preprocessed data that fits the model (checked).
        batch_size: items per forward pass.
        max_items: evaluate only the first this many items (None = all).
        passes: Monte-Carlo passes over the items (each with fresh t and noise).
        seed: seeds t and the noise.
        bf16: autocast (None = on for CUDA only).
        weights: label for the report ("ema" or "model").
        split: "validation" (falls back to "train" when nothing is held out), "train" or "all".
    """
    data.check_model(model.config)
    _check_vocabulary(model, data)
    if batch_size < 1 or passes < 1:
        raise ValueError(f"batch_size and passes must be >= 1, got {batch_size}, {passes}")
    index, split = _items(data, split, max_items)
    n = len(index)
    if n == 0:
        raise ValueError("no items to evaluate")
    device = next(model.parameters()).device
    codec, schedule, L = model.codec, model.schedule, model.config.seq_length
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    per_item = torch.zeros(passes, n, dtype=torch.float64)  # nats per sequence
    text = model.config.modality == "text"
    lengths = token_byte_lengths(model) if text else None
    item_bytes = np.zeros(n, dtype=np.int64)  # UTF-8 bytes each item decodes to (text)
    try:
        for p in range(passes):
            # (n,) stratified times: one stratum per item, in a seeded random order
            strata = torch.randperm(n, generator=gen).double()
            t_all = ((strata + torch.rand(n, generator=gen, dtype=torch.float64)) / n).clamp(T_MIN, 1.0)
            for start in range(0, n, batch_size):
                x0 = data.batch(index[start : start + batch_size]).to(device)  # (B, L)
                if lengths is not None and p == 0:
                    ids = x0.cpu().numpy()
                    item_bytes[start : start + len(x0)] = lengths[ids].sum(axis=1)
                t = t_all[start : start + batch_size].float().to(device)  # (B,)
                y0 = codec.encode(x0)  # (B, L, ell)
                y_t = add_noise(y0, t, schedule, codec, gen)  # (B, L, ell)
                with autocast(device, bf16):
                    logits = model(y_t)  # (B, L, C)
                vb = valid_bound(logits.float(), y_t, x0, t.to(device), codec, schedule)  # (B,)
                per_item[p, start : start + len(x0)] = vb.double().cpu()
    finally:
        model.train(was_training)
    est = per_item.mean(0) / L  # (n,) nats per token, averaged over passes
    mean = float(est.mean())
    se = float(est.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    if not math.isfinite(mean):
        raise ValueError("the valid bound is not finite: the model produces NaN or infinite logits")
    how = (
        f"continuous-time valid bound (docs/METHOD.md §4), Monte Carlo over t stratified across {n} {split} "
        f"items x {passes} pass(es), seed {seed}; stderr = std/sqrt(items)"
    )
    extra = {}
    if text:
        nats_item = per_item.mean(0).numpy()  # (n,) nats per sequence
        total_bytes = int(item_bytes.sum())
        how += (
            f"; bits/byte = summed bound / (ln 2 x {total_bytes:,} UTF-8 bytes the items decode to, "
            f"padding included, {model.tokenizer.kind} tokenizer)"
        )
        extra = {
            "bits_per_byte": float(nats_item.sum() / (math.log(2.0) * total_bytes)),
            "stderr_bits_per_byte": _ratio_stderr(nats_item, item_bytes.astype(np.float64)) / math.log(2.0),
            "bytes_per_token": total_bytes / (n * L),
            "tokenizer": model.tokenizer.kind,
        }
    return EvalResult(
        nats_per_token=mean,
        stderr_nats_per_token=se,
        items=n,
        samples=n * passes,
        split=split,
        weights=weights,
        how=how,
        modality=model.config.modality,
        **extra,
    )
