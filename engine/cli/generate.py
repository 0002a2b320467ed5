"""``prime generate``: sample from a model and write a PNG grid or a text file (and a GIF).

The PNG carries the model, seed and every sampler setting as text chunks, so a picture says how
it was made. ``--json`` prints one object with steps, nfe and idle_steps per sample, seconds and
the outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

from engine.api import (
    DEFAULT_STRATEGY,
    REVEAL_MODES,
    STRATEGIES,
    CancelToken,
    SampleRequest,
    SampleResult,
    SampleStep,
    describe_settings,
    recommended_settings,
)
from engine.cli.common import DefaultsHelpFormatter, Interrupted, emit, set_cpu_threads
from engine.cli.conditions import conditioning_summary, image_condition_from_flags, text_condition_from_flags
from engine.device import pick_device
from engine.files.atomic import DiskFullError, atomic_path, disk_full
from engine.files.convert import tokens_to_images, tokens_to_text
from engine.files.library import resolve_model
from engine.files.media import auto_scale, frame_steps, grid, save_gif, save_png, state_to_rgb, text_frame
from engine.files.modelfile import ModelInfo, app_version, load_model
from engine.sampling import iter_sample


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``generate`` on the ``prime`` sub-command parser."""
    p = sub.add_parser(
        "generate",
        parents=[common],
        help="sample images (PNG grid) or text (.txt)",
        description="Sample from a model. Image models write a PNG grid, text models a text file. "
        "Sampler settings the model recommends (shown by 'prime info') replace the defaults below; "
        "a flag you give wins.",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, help="library name or path of a .safetensors model")
    p.add_argument("--out", required=True, help="output file: .png for image models, e.g. .txt for text")
    p.add_argument(
        "--steps", type=int, help="denoising steps T (default 64, or the model's recommended number)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed (default 0) of the one random stream the whole batch draws from: the same model, "
        "seed, --num and settings give the same samples; sample 2 of a batch is not sample 1 of another seed",
    )
    p.add_argument("--num", type=int, default=1, help="number of samples")
    p.add_argument("--temperature", type=float, help="temperature at t=1 (default 1.0)")
    p.add_argument(
        "--temperature-end",
        type=float,
        help="temperature at t=0, linear in t (default: --temperature throughout)",
    )
    p.add_argument("--top-k", type=int, help="keep the k most likely tokens; 0 = off (default 0)")
    p.add_argument("--top-p", type=float, help="nucleus mass in (0, 1]; 1.0 = off (default 1.0)")
    p.add_argument(
        "--reveal",
        choices=REVEAL_MODES,
        help="how masked digits are drawn (default joint): joint = one token drawn from the filtered "
        "distribution, then its masked digits revealed; marginal = each digit drawn from its own marginal",
    )
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help=f"which masked digits each step reveals (default {DEFAULT_STRATEGY}; see docs/SAMPLING.md): "
        "ancestral = the model's own sampler; confidence / margin / entropy = the most certain digits "
        "first; threshold = every digit whose confidence reaches --threshold",
    )
    p.add_argument("--threshold", type=float, help="tau in [0, 1] for --strategy threshold (default 0.9)")
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: the cores the load average leaves free; PRIME_THREADS overrides)",
    )
    p.add_argument(
        "--corrector", type=float, help="fraction of digits re-masked per step; 0.0 = off (default 0.0)"
    )
    p.add_argument(
        "--corrector-start",
        type=float,
        help="the corrector works only once the time t (1 at the start, 0 at the end) has fallen to "
        "this; 1.0 = after every step, 0.5 = in the second half (default 1.0)",
    )
    p.add_argument("--time-warp", type=float, help="time grid t_k = (1 - k/T)**warp, k = 0..T (default 1.0)")
    p.add_argument(
        "--no-recommended",
        action="store_true",
        help="ignore the sampler settings the model recommends (plain defaults for what you do not set)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="call the network on idle steps too (default: "
        "reuse the previous network output when no digit changed)",
    )
    p.add_argument("--prompt", help="text models: fixed text at the start")
    p.add_argument("--suffix", help="text models: fixed text after the generated span (infilling)")
    p.add_argument(
        "--length",
        type=int,
        help="text models: tokens to generate after the prompt (default: fill the sequence); "
        "the suffix follows them and the output is trimmed to prompt + length + suffix",
    )
    p.add_argument("--image", help="image models: start from this picture (resized to the model's size)")
    p.add_argument(
        "--keep-digits",
        type=int,
        help="with --image: keep the K most significant digits of every pixel and regenerate the rest "
        "('keep the coarse image, regenerate the detail'; needs ell > K)",
    )
    p.add_argument(
        "--inpaint",
        metavar="X,Y,W,H",
        help="with --image: regenerate this box (pixels) and keep everything outside it; "
        "with --keep-digits the box keeps its high digits",
    )
    p.add_argument("--trajectory", help="also write an animated GIF of the denoising (.gif)")
    p.add_argument(
        "--scale",
        type=int,
        help="image upscale factor for the PNG/GIF (default: "
        "auto: each sample about 96 px on its longer side)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.set_defaults(run=run_generate)


# --------------------------------------------------------------------------- validation


def _check_outputs(args: argparse.Namespace, modality: str) -> tuple[Path, Path | None]:
    out = Path(args.out).expanduser()
    if modality == "image" and out.suffix.lower() != ".png":
        raise ValueError(f"image models write PNG: --out must end in .png, got {str(out)!r}")
    if modality == "text" and out.suffix.lower() in (".png", ".gif", ".jpg", ".jpeg", ".safetensors"):
        raise ValueError(
            f"text models write text: give --out a text file name (e.g. story.txt), got {str(out)!r}"
        )
    if out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; give a file name")
    gif = None
    if args.trajectory is not None:
        gif = Path(args.trajectory).expanduser()
        if gif.suffix.lower() != ".gif":
            raise ValueError(f"--trajectory must end in .gif, got {str(gif)!r}")
    if args.scale is not None and not 1 <= args.scale <= 64:
        raise ValueError(f"--scale must be in 1..64, got {args.scale}")
    return out, gif


# --------------------------------------------------------------------------- running


def drive(
    gen: Generator[SampleStep, None, SampleResult], cancel: CancelToken, progress: bool
) -> SampleResult:
    """Drain a sampling generator; Ctrl-C cancels it cooperatively (the partial result is kept)."""
    previous = None
    if threading.current_thread() is threading.main_thread():

        def on_interrupt(signum: int, frame: Any) -> None:
            cancel.cancel()
            signal.signal(signal.SIGINT, previous)  # a second Ctrl-C aborts at once

        previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                return stop.value
            if progress:
                print(f"\rstep {step.step}/{step.steps}", end="", file=sys.stderr, flush=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if progress:
            print(file=sys.stderr)


def png_text(
    info: ModelInfo, request: SampleRequest, result: SampleResult, extra: dict[str, Any] | None = None
) -> dict[str, str]:
    """The settings a PNG carries as text chunks (``extra``: conditioning flags)."""
    settings = request.to_dict()
    chunks = {
        "Software": f"Prime Studio {app_version()}",
        "model": info.name,
        "model_path": str(info.path),
        "app_version": app_version(),
        "seed": str(request.seed),
        "steps": str(request.steps),
        "num_samples": str(request.num_samples),
        "nfe": ",".join(str(v) for v in result.nfe),
        "idle_steps": ",".join(str(v) for v in result.idle_steps),
        "cancelled": str(result.cancelled).lower(),
    }
    for key in (
        "temperature",
        "temperature_end",
        "top_k",
        "top_p",
        "reveal",
        "strategy",
        "threshold",
        "cache",
        "corrector",
        "corrector_start",
        "time_warp",
    ):
        chunks[key] = str(settings[key])
    for key, value in (extra or {}).items():
        chunks[key] = str(value)
    chunks["prime-settings"] = json.dumps(
        {"model": info.name, "app_version": app_version(), **settings, **(extra or {})}
    )
    return chunks


class _OutputSet:
    """The outputs of one run, written to temporaries and renamed together: all new or all old.

    :meth:`temp` gives the temporary beside a target (via :func:`~engine.files.atomic.atomic_path`).
    A Ctrl-C or an error before the renames removes every temporary, so the earlier files stay as
    they were; during the renames (a few system calls) SIGINT is held back.
    """

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.stack = stack
        self.previous: Any = None
        self.armed = False
        self.targets: dict[str, Path] = {}

    def temp(self, target: Path) -> Path:
        """The temporary file to write ``target``'s new content to."""
        tmp = self.stack.enter_context(atomic_path(target))
        self.targets[str(tmp)] = target
        return tmp

    def target_of(self, name: str | None) -> str | None:
        """The output a temporary (or a temporary of it) stands for, for messages."""
        for tmp, target in self.targets.items():
            if name and Path(tmp).name in Path(str(name)).name:  # the nested one is "." + tmp + ".X.tmp"
                return str(target)
        return name

    def sync(self) -> None:
        """Flush every temporary to disk now, so that a full disk shows before the first rename."""
        for tmp, target in self.targets.items():
            try:
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise disk_full(target, sum(Path(t).stat().st_size for t in self.targets)) from None
                raise

    def arm(self) -> None:
        """Hold SIGINT back until :meth:`disarm` (main thread only)."""
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
            self.armed = True

    def disarm(self) -> None:
        """Restore the SIGINT handler."""
        if self.armed:
            signal.signal(signal.SIGINT, self.previous)
            self.armed = False


@contextlib.contextmanager
def all_or_nothing() -> Generator[_OutputSet, None, None]:
    """Write a run's outputs as one set (see :class:`_OutputSet`)."""
    files = None
    try:
        with contextlib.ExitStack() as stack:
            files = _OutputSet(stack)
            yield files
            files.sync()
            files.arm()  # the renames below happen together, uninterrupted
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted while writing the outputs: nothing new was written and earlier files are unchanged"
        ) from None
    except DiskFullError as exc:  # name the output, not its temporary
        target = files.target_of(exc.filename) if files is not None else exc.filename
        raise DiskFullError(exc.errno, f"{exc.strerror}; nothing new was written", target) from None
    finally:
        if files is not None:
            files.disarm()


def sample_separator(index: int, count: int, seed: int) -> str:
    """The line before sample ``index`` (0-based) of a multi-sample text output.

    All samples of a batch come from one random stream seeded by ``seed`` (one generator for the
    batch, :func:`engine.sampling.iter_sample`), so a sample is named by its place in the batch and
    the batch's seed and size, not by a seed of its own.
    """
    return f"--- sample {index + 1} of {count} (seed {seed}, --num {count}) ---"


def samples_text(texts: list[str], seed: int) -> str:
    """The samples as one text: a single sample as it is, several each under its separator line."""
    if len(texts) == 1:
        return texts[0]
    return "\n".join(f"{sample_separator(i, len(texts), seed)}\n{t}" for i, t in enumerate(texts))


def _write_text(out: Path, texts: list[str], seed: int) -> None:
    body = samples_text(texts, seed)
    out.write_text(body if body.endswith("\n") else body + "\n", encoding="utf-8")  # a temporary


# what a flag left unset means when the model recommends nothing (SampleRequest's own defaults,
# with the strategy the CLI and the studio default to)
PLAIN_SETTINGS: dict[str, Any] = {
    "steps": 64,
    "temperature": 1.0,
    "temperature_end": None,
    "top_k": 0,
    "top_p": 1.0,
    "reveal": "joint",
    "strategy": DEFAULT_STRATEGY,
    "threshold": 0.9,
    "corrector": 0.0,
    "corrector_start": 1.0,
    "time_warp": 1.0,
}


def sampler_settings(args: argparse.Namespace, info: ModelInfo) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings for the request, what the model recommended and was used).

    Plain defaults, then the model card's recommendation (unless ``--no-recommended``), then every
    flag the user gave. A recommendation the card gets wrong is reported and ignored.
    """
    recommended: dict[str, Any] = {}
    if not args.no_recommended:
        try:
            recommended = recommended_settings(info.card)
        except ValueError as exc:
            print(f"warning: {info.name}: {exc}; using the plain defaults", file=sys.stderr)
    given = {key: getattr(args, key) for key in PLAIN_SETTINGS if getattr(args, key) is not None}
    used = {key: value for key, value in recommended.items() if key not in given}
    if used and not args.json:
        print(
            f"{info.name} recommends {describe_settings(used)} "
            "(pass --no-recommended for the plain defaults)",
            file=sys.stderr,
        )
    return {**PLAIN_SETTINGS, **recommended, **given}, used


def run_generate(args: argparse.Namespace) -> int:
    """``prime generate``."""
    set_cpu_threads(args.threads)  # more threads than free cores is many times slower
    path = resolve_model(args.model)
    device = pick_device(args.device or "cpu")
    load_started = time.perf_counter()
    model, info = load_model(path, device=device)
    load_seconds = time.perf_counter() - load_started
    cfg = info.config
    out, gif = _check_outputs(args, cfg.modality)
    condition, shown = None, cfg.seq_length
    if cfg.modality == "text":
        given = [
            flag
            for flag, v in (
                ("--image", args.image),
                ("--keep-digits", args.keep_digits),
                ("--inpaint", args.inpaint),
            )
            if v is not None
        ]
        if given:
            raise ValueError(f"{', '.join(given)} only apply to image models; {info.name!r} is a text model")
        condition, shown = text_condition_from_flags(args, model, info)
    else:
        given = [
            flag
            for flag, v in (("--prompt", args.prompt), ("--suffix", args.suffix), ("--length", args.length))
            if v is not None
        ]
        if given:
            raise ValueError(f"{', '.join(given)} only apply to text models; {info.name!r} is an image model")
        condition = image_condition_from_flags(args, model, info)
    chosen, recommended = sampler_settings(args, info)
    request = SampleRequest(
        num_samples=args.num,
        seed=args.seed,
        cache=not args.no_cache,
        preview_every=chosen["steps"],
        condition=condition,
        **chosen,
    )
    if request.top_k > cfg.num_classes:
        raise ValueError(f"--top-k must be in 0..{cfg.num_classes} (C of this model), got {request.top_k}")
    cancel = CancelToken()
    progress = not args.json and sys.stderr.isatty()
    result = drive(iter_sample(model, request, cancel), cancel, progress)
    outputs: list[dict[str, Any]] = []
    texts: list[str] | None = None
    with all_or_nothing() as files:  # written only now that sampling is over, all together
        if cfg.modality == "image":
            extra = conditioning_summary(args)
            outputs.append(_write_images(out, files.temp(out), info, request, result, args.scale, extra))
        else:
            texts = [tokens_to_text(row[:shown], model.tokenizer) for row in result.tokens]  # bytes or BPE
            _write_text(files.temp(out), texts, request.seed)
            outputs.append({"kind": "text", "path": str(out), "texts": texts})
            if gif is not None:
                outputs.append(_write_text_gif(gif, files.temp(gif), model, result, shown))
        if gif is not None and cfg.modality == "image":
            outputs.append(_write_image_gif(gif, files.temp(gif), info, model, result, args.scale))
    payload = {
        "model": info.name,
        "model_path": str(info.path),
        "modality": cfg.modality,
        "device": str(device),
        "seed": request.seed,
        "num_samples": request.num_samples,
        "steps": request.steps,
        "steps_done": result.steps_done,
        "cancelled": result.cancelled,
        "nfe": result.nfe,
        "idle_steps": result.idle_steps,
        "seconds": round(result.seconds, 4),
        "load_seconds": round(load_seconds, 4),
        "settings": request.to_dict(),
        "recommended_used": recommended,
        "conditioning": conditioning_summary(args),
        "outputs": outputs,
    }
    if texts is not None:
        payload["texts"] = texts
        payload["tokenizer"] = model.tokenizer.kind
    summary = (
        f"{'text' if texts is not None else 'images'}: {', '.join(o['path'] for o in outputs)}  "
        f"({request.num_samples} sample(s), {result.steps_done}/{request.steps} steps, "
        f"NFE {_span(result.nfe)}, idle steps {_span(result.idle_steps)}, {result.seconds:.2f} s)"
    )
    if texts is None:
        text = summary
    else:  # several samples: the summary under a closing rule, so the last sample ends visibly
        text = "\n".join([samples_text(texts, request.seed), *(["---"] if len(texts) > 1 else []), summary])
    if result.cancelled:
        text += "\ninterrupted: wrote the partial result"
    emit(args, payload, text)
    return 130 if result.cancelled else 0


def _span(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _write_images(
    out: Path,
    tmp: Path,
    info: ModelInfo,
    request: SampleRequest,
    result: SampleResult,
    scale: int | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    cfg = info.config
    images = tokens_to_images(result.tokens, cfg)  # (N, H, W, channels) uint8
    factor = scale or auto_scale(cfg.height, cfg.width)
    save_png(tmp, grid(images, scale=factor), png_text(info, request, result, extra))
    return {"kind": "image_grid", "path": str(out), "scale": factor}


def _write_image_gif(
    gif: Path, tmp: Path, info: ModelInfo, model: Any, result: SampleResult, scale: int | None
) -> dict[str, Any]:
    cfg = info.config
    factor = scale or auto_scale(cfg.height, cfg.width)
    traj = result.trajectory
    steps = frame_steps(result.steps_done)
    frames = [grid(state_to_rgb(traj.state_at(k), cfg, model.codec), scale=factor) for k in steps]
    save_gif(tmp, frames)
    return {"kind": "trajectory", "path": str(gif), "frames": len(frames), "steps_shown": steps}


def _write_text_gif(gif: Path, tmp: Path, model: Any, result: SampleResult, shown: int) -> dict[str, Any]:
    traj = result.trajectory
    steps = frame_steps(result.steps_done)
    final = result.tokens[:, :shown]
    frames = [
        text_frame(traj.state_at(k)[:, :shown], model.codec, tokenizer=model.tokenizer, final=final)
        for k in steps
    ]
    save_gif(tmp, frames)
    return {"kind": "trajectory", "path": str(gif), "frames": len(frames), "steps_shown": steps}
