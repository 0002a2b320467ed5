"""Sample-quality measures for the bundled models (used by ``prime bench quality``).

Digits: a small classifier trained on the real training digits gives the class balance of the
samples, the mean confidence, and features for a Fréchet distance between real held-out digits and
samples (real training vs real held-out is reported as the floor). Text: the share of generated
words found in the corpus vocabulary, and the share of well-formed verse lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
LINE_END = ".,;:?!"


def steps_for_nfe(target_nfe: int, subtokens: int, max_steps: int = 100_000) -> int:
    """Smallest T whose expected NFE with caching (linear grid, one sample) rounds to ``target_nfe``.

    E[NFE] = T - E[idle steps] = T - T (1 - 1/T)^N for N free sub-tokens (docs/METHOD.md §6). It stays
    below N, so a target of N or more calls cannot be reached (ValueError).
    """
    if target_nfe >= subtokens:
        raise ValueError(
            f"{subtokens} sub-tokens allow at most {subtokens} network calls with caching "
            f"(each call follows a reveal); NFE {target_nfe} cannot be reached"
        )
    for steps in range(max(1, target_nfe), max_steps):
        if steps - steps * (1.0 - 1.0 / steps) ** subtokens >= target_nfe - 0.5:
            return steps
    raise ValueError(f"no step count up to {max_steps} reaches {target_nfe} expected network calls")


def fit_classifier(
    make_net: Callable[[], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    epochs: int,
    batch: int,
    lr: float,
    weight_decay: float,
) -> nn.Module:
    """A judge's classifier (its forward gives (logits, features)) fitted with Adam on cross-entropy.

    Shuffled batches for ``epochs`` epochs; deterministic for a seed (torch is seeded before the net
    is built). Returns the net in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = make_net()
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            loss = nn.functional.cross_entropy(net(x[idx])[0], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


class _DigitNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.body(x)
        return self.head(feats), feats


@dataclass
class DigitJudge:
    """A classifier trained on real digits; ``score`` measures a batch of 8x8 17-level samples."""

    net: _DigitNet
    real_val_features: np.ndarray
    real_train_features: np.ndarray
    val_accuracy: float

    @classmethod
    def fit(
        cls,
        train_tokens: np.ndarray,
        train_labels: np.ndarray,
        val_tokens: np.ndarray,
        val_labels: np.ndarray,
        seed: int = 0,
        epochs: int = 60,
    ) -> DigitJudge:
        """Train on (N, 64) tokens in 0..16 with labels; deterministic for a seed."""
        x = _normalise(train_tokens)
        y = torch.as_tensor(train_labels, dtype=torch.long)
        net = fit_classifier(_DigitNet, x, y, seed, epochs, batch=64, lr=2e-3, weight_decay=1e-4)
        with torch.no_grad():
            logits, val_feats = net(_normalise(val_tokens))
            acc = float((logits.argmax(-1) == torch.as_tensor(val_labels)).float().mean())
            train_feats = net(x)[1]
        return cls(net, val_feats.numpy().astype(np.float64), train_feats.numpy().astype(np.float64), acc)

    def score(self, tokens: np.ndarray) -> dict:
        """Class balance, mean confidence, share with confidence >= 0.9, Fréchet distance to real."""
        with torch.no_grad():
            logits, feats = self.net(_normalise(tokens))
        probs = logits.softmax(-1)
        conf, label = probs.max(-1)
        counts = np.bincount(label.numpy(), minlength=10)
        return {
            "samples": int(len(tokens)),
            "class_counts": counts.tolist(),
            "class_balance_entropy_bits": _entropy_bits(counts),
            "mean_confidence": float(conf.mean()),
            "confident_share": float((conf >= 0.9).float().mean()),
            "frechet_distance": frechet_distance(feats.numpy().astype(np.float64), self.real_val_features),
        }

    def features(self, tokens: np.ndarray) -> np.ndarray:
        """The hidden features (N, D) float64 the Fréchet distance compares."""
        with torch.no_grad():
            return self.net(_normalise(tokens))[1].numpy().astype(np.float64)

    def frechet_spread(self, tokens: np.ndarray, draws: int = 30, seed: int = 0) -> float:
        """How much the Fréchet distance of ``tokens`` moves with the draw: its bootstrap SD.

        The standard deviation over ``draws`` resamplings (with replacement, as many as given) of
        the samples, against the same held-out digits.
        """
        return frechet_spread(self.features(tokens), self.real_val_features, draws, seed)

    def floor(self) -> float:
        """Fréchet distance between real training and real held-out features (the best a sampler can do)."""
        return frechet_distance(self.real_train_features, self.real_val_features)


def _normalise(tokens: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(tokens), dtype=torch.float32) / 16.0


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, D) and b (M, D)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # trace of sqrt(cov_a cov_b) via the eigenvalues of sqrt(cov_a) cov_b sqrt(cov_a) (symmetric PSD)
    w, v = np.linalg.eigh(cov_a)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    tr_sqrt = float(np.sqrt(np.clip(inner, 0, None)).sum())
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt)


def frechet_spread(a: np.ndarray, b: np.ndarray, draws: int = 30, seed: int = 0) -> float:
    """Bootstrap standard deviation of ``frechet_distance(a, b)`` over resamplings of ``a``."""
    if draws < 2:
        raise ValueError(f"draws must be at least 2, got {draws}")
    rng = np.random.default_rng(seed)
    values = [frechet_distance(a[rng.integers(0, len(a), len(a))], b) for _ in range(draws)]
    return float(np.std(values, ddof=1))


def corpus_vocabulary(lines: list[str]) -> set[str]:
    """Lower-cased words of a corpus."""
    vocab: set[str] = set()
    for line in lines:
        vocab.update(w.lower() for w in WORD.findall(line))
    return vocab


def text_quality(passages: list[str], vocab: set[str]) -> dict:
    """Word and line statistics of generated passages against a corpus vocabulary.

    A line counts when it lies wholly inside a passage (not the first or last, which may be cut).
    It is well-formed when it starts with a capital letter, ends with one of ``.,;:?!``, has at least
    three words and every word is in the vocabulary.
    """
    words = in_vocab = lines = good = 0
    for text in passages:
        for w in WORD.findall(text):
            words += 1
            in_vocab += w.lower() in vocab
        inner = text.split("\n")[1:-1]
        for line in inner:
            if not line.strip():
                continue
            lines += 1
            ws = WORD.findall(line)
            good += bool(
                len(ws) >= 3
                and line[0].isupper()
                and line.rstrip()[-1] in LINE_END
                and all(w.lower() in vocab for w in ws)
            )
    return {
        "passages": len(passages),
        "words": words,
        "in_vocabulary_share": in_vocab / words if words else math.nan,
        "lines": lines,
        "well_formed_line_share": good / lines if lines else math.nan,
    }
