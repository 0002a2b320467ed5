"""Judge 8x8 digits models against the digits quality bar at the sampler a user gets by default.

``python -m engine.bench.digits MODEL [MODEL ...] [--steps 64] [--samples 128] [--seeds 0]``

For each model file (or library name): the valid bound on the 297 held-out digits, then, per
sampler setting, the classifier's verdict on ``--samples`` samples: the share it reads with
confidence >= 0.9, the smallest and largest class share, and the Fréchet distance of its hidden
features to the held-out digits. The judge is ``prime bench quality``'s (a small classifier fitted
on the 1,500 training digits, seed 0). Besides the full-data floor (1,500 real training digits vs
the 297 held out) the report gives the same distance for ``--samples`` real training digits, which
is what a perfect model would score at that sample count (the estimate is biased upwards for few
samples).

The bar: confident share >= 0.9, every class within 5-15 %, Fréchet distance <= 4.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.api import STRATEGIES, SampleRequest, describe_settings, recommended_settings
from engine.bench.metrics import DigitJudge
from engine.bench.quality import _digits_judge
from engine.files.library import resolve_model
from engine.files.modelfile import load_model
from engine.sampling import sample
from engine.training import evaluate

BAR_CONFIDENT = 0.9
BAR_CLASS_SHARE = (0.05, 0.15)
BAR_FRECHET = 4.0


@dataclass(frozen=True)
class Setting:
    """One sampler setting (the defaults are ``SampleRequest``'s: what ``prime generate`` uses)."""

    steps: int = 64
    strategy: str = "ancestral"
    temperature: float = 1.0
    threshold: float = 0.9
    top_p: float = 1.0
    corrector: float = 0.0
    corrector_start: float = 1.0
    top_k: int = 0
    reveal: str = "joint"
    temperature_end: float | None = None
    time_warp: float = 1.0
    recommended: str = ""  # the model's recommendation this setting is, as text ("" = none)

    @classmethod
    def of_model(cls, card: dict[str, Any]) -> Setting | None:
        """The setting a model's card recommends (None when it recommends none or nothing usable)."""
        try:
            rec = recommended_settings(card)
        except ValueError:
            return None
        return cls(**rec, recommended=describe_settings(rec)) if rec else None

    def label(self) -> str:
        """A short name for tables."""
        text = "recommended: " if self.recommended else ""
        text += f"{self.strategy} T={self.steps}"
        if self.strategy == "threshold":
            text += f" tau={self.threshold:g}"
        if self.temperature != 1.0:
            text += f" temp={self.temperature:g}"
        if self.top_p != 1.0:
            text += f" top-p={self.top_p:g}"
        if self.corrector:
            text += f" corrector={self.corrector:g}"
            if self.corrector_start != 1.0:
                text += f" from t={self.corrector_start:g}"
        if self.top_k:
            text += f" top-k={self.top_k}"
        if self.reveal != "joint":
            text += f" reveal={self.reveal}"
        if self.temperature_end is not None:
            text += f" temp-end={self.temperature_end:g}"
        if self.time_warp != 1.0:
            text += f" warp={self.time_warp:g}"
        return text


def draw_samples(
    model: Any, setting: Setting, num: int, seed: int, batch: int = 64
) -> tuple[np.ndarray, list[int]]:
    """``num`` samples (tokens (num, L), NFE per sample) at ``setting``, ``batch`` at a time.

    Batch i draws with seed ``seed * 1000 + i``, so a setting's samples do not depend on the others.
    """
    fields = {f: getattr(setting, f) for f in Setting.__dataclass_fields__ if f != "recommended"}
    tokens, nfe = [], []
    for i, start in enumerate(range(0, num, batch)):
        request = SampleRequest(num_samples=min(batch, num - start), seed=seed * 1000 + i, **fields)
        result = sample(model, request)
        tokens.append(result.tokens)
        nfe += result.nfe
    return torch.cat(tokens).numpy(), nfe


def score_settings(
    model: Any,
    settings: list[Setting],
    num: int,
    seeds: tuple[int, ...],
    batch: int,
    score: Callable[[np.ndarray], dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per setting and seed: ``score(samples)`` with the setting, seed, mean NFE and seconds.

    With several seeds a last row per setting (``"seed": "all"``) scores all their samples together:
    at these sample counts one seed's Fréchet distance moves by most of a unit (README, "Digits
    quality"), the pooled one less.
    """
    rows = []
    for setting in settings:
        drawn, calls, spent = [], [], 0.0
        for seed in seeds:
            started = time.perf_counter()
            tokens, nfe = draw_samples(model, setting, num, seed, batch)
            scores = score(tokens)
            seconds = time.perf_counter() - started
            drawn.append(tokens)
            calls += nfe
            spent += seconds
            rows.append(
                {
                    "setting": setting.label(),
                    "seed": seed,
                    "mean_nfe": float(np.mean(nfe)),
                    "seconds": seconds,
                    **scores,
                }
            )
        if len(seeds) > 1:
            rows.append(
                {
                    "setting": setting.label(),
                    "seed": "all",
                    "seeds": list(seeds),
                    "mean_nfe": float(np.mean(calls)),
                    "seconds": spent,
                    **score(np.concatenate(drawn)),
                }
            )
    return rows


def make_judge(seed: int = 0) -> tuple[DigitJudge, Any, np.ndarray]:
    """(judge, digits data, labels): the classifier ``prime bench quality`` uses."""
    from sklearn.datasets import load_digits

    judge, data = _digits_judge(seed)
    return judge, data, load_digits().target


def verdict(scores: dict[str, Any]) -> dict[str, Any]:
    """Class-share range and whether ``judge.score``'s result meets the bar."""
    counts = np.asarray(scores["class_counts"], dtype=np.float64)
    shares = counts / max(1.0, counts.sum())
    lo, hi = float(shares.min()), float(shares.max())
    ok = (
        scores["confident_share"] >= BAR_CONFIDENT
        and BAR_CLASS_SHARE[0] <= lo
        and hi <= BAR_CLASS_SHARE[1]
        and scores["frechet_distance"] <= BAR_FRECHET
    )
    return {"min_class_share": lo, "max_class_share": hi, "meets_bar": bool(ok)}


def real_reference(judge: DigitJudge, data: Any, num: int, seeds: list[int]) -> dict[str, Any]:
    """The judge on ``num`` real training digits (one draw per seed): a perfect model's score.

    ``num`` beyond the training digits takes all of them (the floor's own set).
    """
    rows = []
    num = min(num, len(data.train_index))
    for seed in seeds:
        pick = np.random.default_rng(seed).choice(data.train_index, size=num, replace=False)
        rows.append({**judge.score(data.tokens[pick].astype(np.int64)), "seed": seed})
    return {
        "samples": num,
        "confident_share": float(np.mean([r["confident_share"] for r in rows])),
        "frechet_distance": float(np.mean([r["frechet_distance"] for r in rows])),
        "floor_full": judge.floor(),
    }


def real_pass_rates(judge: DigitJudge, data: Any, num: int, draws: int, seed: int = 1000) -> dict[str, Any]:
    """How often ``num`` random real training digits meet each part of the bar (``draws`` sets).

    What a perfect sampler would score at that sample count: the Fréchet distance and the class
    shares of a few samples are noisy, so even real digits miss the bar on some draws.
    """
    confident = classes = distance = bar = 0
    for k in range(draws):
        pick = np.random.default_rng(seed + k).choice(data.train_index, size=num, replace=False)
        scores = judge.score(data.tokens[pick].astype(np.int64))
        v = verdict(scores)
        confident += scores["confident_share"] >= BAR_CONFIDENT
        classes += BAR_CLASS_SHARE[0] <= v["min_class_share"] and v["max_class_share"] <= BAR_CLASS_SHARE[1]
        distance += scores["frechet_distance"] <= BAR_FRECHET
        bar += v["meets_bar"]
    return {
        "samples": num,
        "draws": draws,
        "confident": confident / draws,
        "class_shares": classes / draws,
        "frechet": distance / draws,
        "bar": bar / draws,
    }


def judge_model(
    path: str,
    judge: DigitJudge,
    data: Any,
    settings: list[Setting],
    num: int = 128,
    seeds: tuple[int, ...] = (0,),
    batch: int = 64,
    eval_passes: int = 4,
    recommended: bool = True,
) -> dict[str, Any]:
    """Valid bound and the judge's verdict per setting and seed for one model file.

    With ``recommended`` the setting the model's card recommends (what ``prime generate`` and the
    studio use by default) is judged first, unless ``settings`` already hold it.
    """
    model, info = load_model(resolve_model(path))
    cfg = model.config
    own = Setting.of_model(info.card) if recommended else None
    if own is not None and dataclasses.replace(own, recommended="") not in settings:
        settings = [own, *settings]
    if cfg.modality != "image" or (cfg.height, cfg.width, cfg.channels, cfg.num_classes) != (8, 8, 1, 17):
        raise ValueError(f"{path}: not an 8x8 grey 17-level digits model")
    bound = evaluate(model, data, passes=eval_passes, seed=0)

    def score(tokens: np.ndarray) -> dict[str, Any]:
        scores = judge.score(tokens)
        return {**scores, "frechet_spread": judge.frechet_spread(tokens), **verdict(scores)}

    rows = score_settings(model, settings, num, seeds, batch, score)
    return {
        "model": str(path),
        "ell": cfg.ell,
        "parameters": model.num_parameters(),
        "valid_bound_bits_per_dim": bound.bits_per_dim,
        "stderr_bits_per_dim": bound.stderr_bits_per_dim,
        "rows": rows,
    }


def format_report(ref: dict[str, Any], results: list[dict[str, Any]]) -> str:
    lines = [
        f"floor: real train vs held-out FD {ref['floor_full']:.2f} (1,500 items); "
        f"{ref['samples']} real training digits: confident {ref['confident_share']:.3f}, "
        f"FD {ref['frechet_distance']:.2f}",
        "model | ell | bound bits/dim | setting | seed | NFE | confident | class share | "
        "FD ± bootstrap SD | bar | s",
    ]
    for res in results:
        for r in res["rows"]:
            lines.append(
                f"{res['model']} | {res['ell']} | {res['valid_bound_bits_per_dim']:.3f} ± "
                f"{res['stderr_bits_per_dim']:.3f} | {r['setting']} | {r['seed']} | {r['mean_nfe']:.1f} | "
                f"{r['confident_share']:.3f} | {r['min_class_share']:.3f}-{r['max_class_share']:.3f} | "
                f"{r['frechet_distance']:.2f} ± {r['frechet_spread']:.2f} | "
                f"{'yes' if r['meets_bar'] else 'no'} | {r['seconds']:.1f}"
            )
    return "\n".join(lines)


def add_setting_flags(p: argparse.ArgumentParser) -> None:
    """The sampler-setting flags of the image benches (each list flag is one axis of the grid)."""
    p.add_argument("--steps", type=int, nargs="+", default=[64])
    p.add_argument("--strategies", nargs="+", default=["ancestral"], choices=STRATEGIES)
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0])
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--top-p", type=float, nargs="+", default=[1.0], help="nucleus mass per token (1 = off)")
    p.add_argument(
        "--corrector", type=float, nargs="+", default=[0.0], help="share re-masked per step (0 = off)"
    )
    p.add_argument(
        "--corrector-start",
        type=float,
        nargs="+",
        default=[1.0],
        help="time t (1 -> 0) from which the corrector works (1 = every step)",
    )
    p.add_argument(
        "--time-warp",
        type=float,
        nargs="+",
        default=[1.0],
        help="time grid t_k = (1 - k/T)**warp (1 = even steps; above 1 more of them near t = 0)",
    )


def settings_from_args(args: argparse.Namespace) -> list[Setting]:
    """Every combination of the :func:`add_setting_flags` values."""
    return [
        Setting(
            steps=s,
            strategy=g,
            temperature=t,
            threshold=args.threshold,
            top_p=q,
            corrector=c,
            corrector_start=w,
            time_warp=x,
        )
        for s in args.steps
        for g in args.strategies
        for t in args.temperatures
        for q in args.top_p
        for c in args.corrector
        for w in (args.corrector_start if c else [1.0])
        for x in args.time_warp
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.bench.digits", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", help="model files or library names")
    p.add_argument(
        "--real-draws",
        type=int,
        default=0,
        metavar="D",
        help="also report how often D random sets of --samples real training digits meet the bar",
    )
    add_setting_flags(p)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--eval-passes", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--no-recommended", action="store_true", help="skip the setting the model's card recommends"
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not args.models and not args.real_draws:
        p.error("name at least one model, or --real-draws D")
    if args.samples < 16:
        p.error("--samples must be at least 16 (the Fréchet distance needs a covariance)")
    torch.set_num_threads(args.threads)
    settings = settings_from_args(args)
    judge, data, _ = make_judge(0)
    if args.real_draws and args.samples >= len(data.train_index):
        p.error(f"--real-draws needs --samples below the {len(data.train_index):,} training digits")
    ref = real_reference(judge, data, args.samples, args.seeds)
    if args.real_draws:
        ref["pass_rates"] = rates = real_pass_rates(judge, data, args.samples, args.real_draws)
        if not args.json:
            print(
                f"{rates['draws']} sets of {rates['samples']} real training digits meet: confident "
                f"{rates['confident']:.0%}, class shares {rates['class_shares']:.0%}, FD <= "
                f"{BAR_FRECHET:g} {rates['frechet']:.0%}, the whole bar {rates['bar']:.0%}",
                flush=True,
            )
    results = []
    for name in args.models:
        results.append(
            judge_model(
                name,
                judge,
                data,
                settings,
                args.samples,
                tuple(args.seeds),
                eval_passes=args.eval_passes,
                recommended=not args.no_recommended,
            )
        )
        if not args.json:
            print(format_report(ref, results[-1:]), flush=True)
    if args.json:
        print(json.dumps({"reference": ref, "results": results}))
    return 0


__all__ = [
    "Setting",
    "add_setting_flags",
    "draw_samples",
    "judge_model",
    "make_judge",
    "real_pass_rates",
    "real_reference",
    "score_settings",
    "settings_from_args",
    "verdict",
]

if __name__ == "__main__":
    sys.exit(main())
