"""Training runs without Qt: size presets, the speed probe, run records and the engine-thread work.

A run is described by a JSON record in ``data_dir()/runs/<id>.json`` (written atomically) and
its files live in ``data_dir()/runs/<id>/``: ``NAME.safetensors`` (the model, once written) and
``NAME.ckpt.safetensors`` (the resumable checkpoint). A record whose status is still "running"
or "paused" when the studio starts belongs to a run that was interrupted (a crash, a killed
process, a pause): the training panel offers to resume it.

Functions marked "engine thread" are run by :mod:`studio.bridge` jobs, never on the GUI thread.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from studio.enginelink import eng

UNFINISHED = ("running", "paused")
MODEL_SUFFIX = ".safetensors"
VOCABULARY_FILE = "vocabulary.json"  # a new BPE text model's vocabulary, in the run's folder
_VOCABULARIES: dict[tuple[str, str], Any] = {}  # (file, digest) -> BpeTokenizer read from it


@dataclass(frozen=True)
class Preset:
    """A backbone size for a new model, with training defaults that suit it."""

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    steps: int
    batch_size: int
    lr: float
    ema: float
    every: int  # checkpoint / preview / validation cadence


PRESETS = {
    p.name: p
    for p in (
        Preset("tiny", 32, 1, 2, 500, 16, 2e-3, 0.99, 100),
        Preset("small", 64, 2, 4, 2000, 32, 1e-3, 0.999, 250),
        Preset("medium", 128, 4, 4, 5000, 32, 5e-4, 0.999, 500),
        Preset("large", 256, 6, 8, 10000, 32, 3e-4, 0.9999, 1000),
    )
}
PROBE_MEMORY_LIMIT = 2_000_000_000  # bytes a speed probe may take (estimated) before it is skipped
FINETUNE_DEFAULTS = {"steps": 1000, "batch_size": 32, "lr": 3e-4, "ema": 0.999, "every": 250}


# ---------------------------------------------------------------------------- estimates
def memory_estimate(config: Any, batch_size: int, num_parameters: int) -> int:
    """Rough peak training memory in bytes (fp32): weights, grads, AdamW, EMA, activations.

    A model-based estimate, not a measurement: 20 bytes per parameter, ~24 floats per token and
    layer for the activations kept for the backward pass, the attention matrices and the logits.
    """
    L, d, layers = config.seq_length, config.d_model, config.n_layers
    states = 20 * num_parameters
    acts = 4 * batch_size * L * (24 * d * layers + config.n_heads * L * layers + 3 * config.num_classes)
    return int(states + acts)


_PARAMS: dict[str, int] = {}


@dataclass(frozen=True)
class SizeOnly:
    """Stands in for a BPE vocabulary not learned yet: sizes and speed depend only on C."""

    vocab_size: int


def buildable(config: Any) -> Any:
    """``config``, or for a BPE text config without its vocabulary one a model can be built from.

    Only for counting parameters and timing steps (the tokens themselves are never decoded).
    """
    if getattr(config, "tokenizer", "") == "bpe" and config.vocabulary is None:
        return config.replace(vocabulary=SizeOnly(config.num_classes))
    return config


def num_parameters(config: Any) -> int:
    """Parameter count of a model built from ``config`` (built once on the CPU, then cached).

    A CPU build takes milliseconds for these sizes (0.2 s for 5M parameters); building on the
    "meta" device looked cheaper but its first use costs seconds of set-up on the GUI thread.
    """
    key = json.dumps(config.to_dict(), sort_keys=True)
    if key not in _PARAMS:
        with torch.no_grad():
            _PARAMS[key] = sum(p.numel() for p in eng.PrimeModel(buildable(config)).parameters())
    return _PARAMS[key]


@dataclass(frozen=True)
class Speed:
    """What the speed probe measured for one model at one batch size (seconds, this machine).

    ``step_s``: one optimiser step at the batch size; ``forward_s``: one forward pass without
    gradients at the batch size (what a validation batch costs); ``preview_s``: one forward pass
    of a sample preview (``PREVIEW_BATCH`` items, what each sampling step costs). NaN when the
    probe was skipped (too large to try here) or cancelled.
    """

    step_s: float
    forward_s: float = math.nan
    preview_s: float = math.nan

    @property
    def ok(self) -> bool:
        """True when the probe ran."""
        return math.isfinite(self.step_s)


SKIPPED = Speed(math.nan)
PREVIEW_BATCH = 4  # TrainConfig.preview_samples default; the studio does not change it


def probe_speed(config: Any, batch_size: int, cancel: Any = None, budget_s: float = 1.0) -> Speed:
    """Engine thread: seconds per training step (and per forward pass) of ``config``, measured.

    One warm-up, then optimiser steps (forward, backward, AdamW) on random tokens with random
    digit masks until ``budget_s`` has passed (at least 3, at most 8); the median step counts
    (the fastest one promised 2-3x less than real runs took on a shared machine). Measured at
    min(batch_size, 8) and scaled linearly to ``batch_size``; then two forward passes without
    gradients at that batch and at ``PREVIEW_BATCH`` (validation and sample previews cost
    those). :data:`SKIPPED` when the probe itself would need more than ``PROBE_MEMORY_LIMIT``
    bytes (estimated), or when cancelled.
    """
    b = max(1, min(batch_size, 8))
    if memory_estimate(config, b, num_parameters(config)) > PROBE_MEMORY_LIMIT:
        return SKIPPED  # too big to try here: a probe must never exhaust the machine
    torch.manual_seed(0)
    model = eng.PrimeModel(buildable(config)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    codec = model.codec
    x0 = torch.randint(0, config.num_classes, (b, config.seq_length))  # (b, L)
    y0 = codec.encode(x0)  # (b, L, ell)
    seconds: list[float] = []
    started = None
    while len(seconds) < 8 and (len(seconds) < 3 or time.perf_counter() - started < budget_s):
        if cancel is not None and cancel.cancelled:
            return SKIPPED
        t0 = time.perf_counter()
        masked = torch.rand(y0.shape) < 0.5
        y_t = torch.where(masked, torch.full_like(y0, codec.mask), y0)  # (b, L, ell)
        logits = model(y_t)  # (b, L, C)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, config.num_classes), x0.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if started is None:  # the warm-up step is not counted
            started = time.perf_counter()
        else:
            seconds.append(time.perf_counter() - t0)
    model.eval()
    forward = {}
    with torch.no_grad():
        for n in (b, min(b, PREVIEW_BATCH)):
            y_t = torch.full_like(y0[:n], codec.mask)  # (n, L, ell)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                model(y_t)
                times.append(time.perf_counter() - t0)
            forward[n] = sorted(times)[1]
    step = sorted(seconds)[len(seconds) // 2]
    return Speed(step * batch_size / b, forward[b] * batch_size / b, forward[min(b, PREVIEW_BATCH)])


def probe_step_seconds(config: Any, batch_size: int, cancel: Any = None, budget_s: float = 1.0) -> float:
    """Engine thread: seconds per training step of ``config`` (:func:`probe_speed`'s ``step_s``)."""
    return probe_speed(config, batch_size, cancel, budget_s).step_s


# What the probe does not see, measured on short real runs from the Train tab (Start -> idle) on
# a shared 2-core Xeon (load average 1.4-2.4): the steps themselves run slower than the probe's
# (the GUI thread draws every step; other programs share the processor), plus fixed costs.
STEP_FACTOR = 1.35  # studio runs' step time / the probe's median: 1.4 (small, 600 steps), 1.7 (tiny)
START_S = 1.0  # queueing the job, building the model and optimiser, moving the data, the first step
CHECKPOINT_BYTES_PER_S = 150e6  # a checkpoint holds weights, EMA and two AdamW moments (16 B/param)
CHECKPOINT_FIXED_S = 0.02
SAVE_S = 0.3  # writing the model file and importing it into the library
FINAL_EVAL_ITEMS = 4096  # engine.training.loop: the final validation covers up to this many items


@dataclass(frozen=True)
class RunEstimate:
    """How long a run should take, and what the time is made of (seconds)."""

    total_s: float
    parts: dict[str, float]

    def text(self) -> str:
        """'≈ 1 min (2000 steps 48 s, 8 validations 3 s, ...)'."""
        shown = ", ".join(f"{k} {duration(v)}" for k, v in self.parts.items() if v >= 0.5)
        return f"\u2248 {duration(self.total_s)}" + (f" ({shown})" if shown else "")


def run_estimate(speed: Speed, tcfg: Any, params: int, val_items: int | None = None) -> RunEstimate:
    """Wall time of a training run of ``tcfg.steps`` steps from a measured :class:`Speed`.

    Adds to the steps what the probe leaves out: the validation passes (``eval_batches`` forward
    passes every ``eval_every`` steps), the sample previews (``preview_steps`` forward passes of
    ``PREVIEW_BATCH`` items every ``preview_every`` steps), the checkpoints, the final validation
    (every held-out item, up to 4096; ``val_items`` None = assume that many) and start-up and
    saving. Forward passes not measured (an older probe) count a third of a step.
    """
    steps = max(0, int(tcfg.steps))
    step_s = speed.step_s * STEP_FACTOR
    forward_s = speed.forward_s if math.isfinite(speed.forward_s) else step_s / 3
    preview_s = speed.preview_s if math.isfinite(speed.preview_s) else forward_s

    def count(every: int) -> int:  # events at multiples of ``every`` before the last step
        return (steps - 1) // every if every and steps else 0

    items = FINAL_EVAL_ITEMS if val_items is None else min(max(val_items, 1), FINAL_EVAL_ITEMS)
    ckpt_s = CHECKPOINT_FIXED_S + 16 * params / CHECKPOINT_BYTES_PER_S
    n_eval, n_ckpt = count(tcfg.eval_every), count(tcfg.checkpoint_every)
    n_prev = steps // tcfg.preview_every if tcfg.preview_every else 0  # the last step previews too
    parts = {
        f"{steps} steps": steps * step_s,
        f"{n_eval} validations": n_eval * tcfg.eval_batches * forward_s,
        f"{n_prev} sample previews": n_prev * tcfg.preview_steps * preview_s,
        f"{n_ckpt} checkpoints": n_ckpt * ckpt_s,
        "final validation": math.ceil(items / max(1, tcfg.batch_size)) * forward_s,
        "start-up and saving": START_S + SAVE_S + ckpt_s,
    }
    return RunEstimate(sum(parts.values()), parts)


# The engine's messages name ``prime train`` flags; on screen they name the Train tab's controls.
_STUDIO_WORDS = (
    (re.compile(r"(?:resume )?with --resume from \S+"), "Resume continues it"),
    (re.compile(r"pass --resume to continue it"), "Resume continues it"),
    (re.compile(r"--resume"), "Resume"),
    (re.compile(r"the learning rate \(--lr\)"), "the Learning rate"),
    (re.compile(r"--lr\b"), "Learning rate"),
    (re.compile(r"give --steps (\d+)"), r"set Steps to \1"),
    (re.compile(r"--steps\b"), "Steps"),
    (re.compile(r"another --out"), "another name"),
    (re.compile(r"--from\b"), "the model selected to fine-tune"),
    (re.compile(r"another --background"), "another Background"),
    (re.compile(r"--background\b"), "Background"),
    (re.compile(r"with --drop-flat"), "with \u201cDrop flat items\u201d"),
    (re.compile(r"\(--drop-flat\)"), "(\u201cDrop flat items\u201d)"),
    (re.compile(r"--column (\S+)"), r"Column \1"),
    (re.compile(r" \(all of them in --json\)"), ""),
    (re.compile(r"\(--force\)"), ""),
)


def studio_words(text: str) -> str:
    """An engine message with its CLI flags (``--resume``, ``--lr``...) put as Train-tab actions."""
    for pattern, words in _STUDIO_WORDS:
        text = pattern.sub(words, text)
    return text


def duration(seconds: float) -> str:
    """'45 s', '12 min', '3.5 h'."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def size(nbytes: float) -> str:
    """'12 MB', '1.4 GB'."""
    if nbytes < 1e9:
        return f"{nbytes / 1e6:.0f} MB"
    return f"{nbytes / 1e9:.1f} GB"


# ---------------------------------------------------------------------------- run records
def runs_dir() -> Path:
    """``data_dir()/runs`` (created)."""
    path = Path(eng.data_dir()) / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


@dataclass
class RunRecord:
    """Everything needed to resume a run after a restart (JSON in ``runs/<id>.json``).

    model: {"kind": "new", "config": ModelConfig dict} or {"kind": "finetune", "path", "name"}.
    status: running | paused | stopped | done | failed.
    """

    id: str
    name: str
    data: str
    model: dict[str, Any]
    train_config: dict[str, Any]
    out: str
    status: str = "running"
    step: int = 0
    steps: int = 0
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    library_path: str | None = None
    message: str = ""

    @property
    def record_path(self) -> Path:
        """Where this record lives."""
        return runs_dir() / f"{self.id}.json"

    @property
    def checkpoint_path(self) -> Path:
        """``NAME.ckpt.safetensors`` beside the model file (the trainer's contract)."""
        out = Path(self.out)
        return out.with_name(out.name[: -len(MODEL_SUFFIX)] + ".ckpt" + MODEL_SUFFIX)

    def train(self) -> Any:
        """The TrainConfig."""
        return eng.TrainConfig.from_dict(self.train_config)

    @property
    def vocabulary_path(self) -> Path:
        """A new BPE text model's vocabulary (tokenizers JSON), beside the model file of the run."""
        return Path(self.out).with_name(VOCABULARY_FILE)

    def _new_config(self) -> Any:
        """A new model's config, with its BPE vocabulary read back from :attr:`vocabulary_path`."""
        cfg = eng.ModelConfig.from_dict(self.model["config"])
        digest = self.model.get("vocabulary_digest")
        if cfg.modality != "text" or cfg.tokenizer != "bpe" or not digest:
            return cfg
        cached = _VOCABULARIES.get((str(self.vocabulary_path), digest))
        if cached is not None:  # read once: previews ask for the config at every event
            return cfg.replace(vocabulary=cached)
        try:
            text = self.vocabulary_path.read_text(encoding="utf-8")
        except OSError as exc:
            where = self.vocabulary_path
            raise ValueError(f"run {self.id}: its vocabulary {where} is unreadable ({exc})") from None
        vocab = eng.BpeTokenizer(text, expected_size=cfg.num_classes)  # TokenizerError (a ValueError)
        if vocab.digest != digest:
            raise ValueError(
                f"run {self.id}: {self.vocabulary_path} is not the vocabulary it was started with"
            )
        bpt = self.model.get("vocabulary_bytes_per_token")
        if isinstance(bpt, (int, float)) and bpt > 0:
            vocab.trained_bytes_per_token = float(bpt)
        if len(_VOCABULARIES) >= 4:
            _VOCABULARIES.pop(next(iter(_VOCABULARIES)))
        _VOCABULARIES[(str(self.vocabulary_path), digest)] = vocab
        return cfg.replace(vocabulary=vocab)

    def model_source(self) -> Any:
        """What ``iter_train`` starts from: a ModelConfig (new) or the parent model's path."""
        if self.model["kind"] == "new":
            return self._new_config()
        return self.model["path"]

    def model_config(self) -> Any:
        """The model's configuration (reads only the parent file's metadata when fine-tuning)."""
        if self.model["kind"] == "new":
            return self._new_config()
        return eng.read_model_info(self.model["path"]).config

    def save(self, **changes: Any) -> RunRecord:
        """Update fields and write the record atomically (temporary file, fsync, rename)."""
        for key, value in changes.items():
            setattr(self, key, value)
        self.updated = _now()
        eng.write_text(self.record_path, json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True))
        return self

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        """Read a record (ValueError if it is not one)."""
        try:
            if not Path(path).is_file():
                raise ValueError("not a regular file")
            data = eng.parse_json(Path(path).read_text(encoding="utf-8"), "the record")
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in names})
        except (OSError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: not a readable training run record ({exc})") from None


def new_run(
    name: str, data: str, model: dict[str, Any], train_config: Any, vocabulary: Any = None
) -> RunRecord:
    """A new run record with its own output folder (the record is not written yet).

    ``vocabulary``: a new BPE text model's (a BpeTokenizer), written into the folder now.
    """
    run_id = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    folder = runs_dir() / run_id
    folder.mkdir(parents=True, exist_ok=True)
    if vocabulary is not None:
        eng.write_text(folder / VOCABULARY_FILE, vocabulary.to_json())
        model = dict(model, vocabulary_digest=vocabulary.digest)
    return RunRecord(
        id=run_id,
        name=name,
        data=str(data),
        model=model,
        train_config=train_config.to_dict(),
        out=str(folder / f"{name}{MODEL_SUFFIX}"),
        steps=train_config.steps,
    )


def unfinished_runs() -> list[RunRecord]:
    """Runs that were running or paused when the studio last stopped, newest first."""
    out = []
    for path in sorted(runs_dir().glob("*.json"), reverse=True):
        try:
            record = RunRecord.load(path)
        except ValueError:
            continue
        if record.status in UNFINISHED:
            out.append(record)
    return out


def checkpoint_step(path: Path) -> int | None:
    """The step stored in a training checkpoint (header only), or None if there is none."""
    if not Path(path).is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return int(json.loads(f.metadata()["state"])["step"])
    except Exception:  # noqa: BLE001 - a broken checkpoint is reported as "none"
        return None


def model_name_ok(name: str) -> str | None:
    """None if ``name`` can name a library model, else why not."""
    if not name:
        return "the new model needs a name"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or name.endswith(".safetensors"):
        return f"invalid model name {name!r}: use letters, digits, '-', '_' and '.'"
    return None


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever is not taken."""
    if base not in taken:
        return base
    i = 2
    while f"{base}-{i}" in taken:
        i += 1
    return f"{base}-{i}"


# ---------------------------------------------------------------------------- engine-thread work
@dataclass
class Intent:
    """What a cancel of the training job means: "stop" (save the model), "pause" or "yield"."""

    value: str = "stop"


@dataclass(frozen=True)
class Outcome:
    """What a training job returns to the GUI (the summary without the model module)."""

    summary: Any
    model_path: str | None
    library_path: str | None
    library_name: str | None
    intent: str


def train_work(record: RunRecord, data: Any, cancel: Any, intent: Intent, resume: bool):
    """Engine thread: ``iter_train`` for ``record``; on "stop", save the model; import it into the library.

    ``data`` is a PreflightReport (from the panel's check) or None (decode ``record.data`` here).
    A cancel's meaning is decided while the run goes on (``intent``: stop, pause or yield), so a
    stop is a second, immediately cancelled ``iter_train(resume=True, save_on_cancel=True)``: the
    engine reloads the checkpoint just written, evaluates it and writes the model with a card
    marked ``stopped_early``. The "finish" intent (stop a paused run) does only that second part.
    Yields the TrainEvents; returns an :class:`Outcome`.
    """
    tcfg = record.train()
    if data is None:
        data = eng.preflight(record.data, record.model_config(), tcfg.data_options(), preview=0)
    finish = intent.value == "finish"
    summary = None
    if not finish:
        summary = yield from eng.iter_train(
            record.model_source(), tcfg, data, record.out, cancel=cancel, resume=resume
        )
    if finish or (summary.cancelled and intent.value == "stop" and summary.steps_done > 0):
        intent.value = "stop"
        if not cancel.cancelled:
            cancel.cancel()
        saving = eng.iter_train(
            record.model_source(), tcfg, data, record.out, cancel=cancel, resume=True, save_on_cancel=True
        )
        summary = yield from _without_start(saving)
    model_path = summary.model_path
    library_path = library_name = None
    if model_path:
        taken = {entry.name for entry in eng.list_models()}
        library_name = unique_name(record.name, taken)
        library_path = str(eng.import_model(model_path, library_name))
    return Outcome(
        dataclasses.replace(summary, model=None), model_path, library_path, library_name, intent.value
    )


def _without_start(gen: Any):
    """The events of ``gen`` except its "start" (a save pass is not a new start); returns its value."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if event.kind != "start":
            yield event
