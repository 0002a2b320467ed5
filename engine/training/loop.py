"""The trainer as a generator: ``iter_train`` yields TrainEvents and returns a TrainSummary.

One step: for each of ``grad_accum`` micro-batches take the next items of a seeded per-epoch
permutation of the training items, encode them to digits, draw t stratified over the batch and
y_t ~ q(y_t | y_0), and back-propagate the chosen objective in nats per token; then clip, step
AdamW with warm-up and constant/cosine learning rate, and update the EMA weights. The noise of
step k comes from a generator seeded by (seed, k, micro-batch, rank) and the data order from
(seed, epoch), so a resumed run sees exactly the items and noise an uninterrupted run would.

The default objective is ``masked_ce`` (unweighted cross-entropy over masked digits): docs/METHOD.md §4
reports it learning faster than the 1/t-weighted bound, whose weight makes gradients noisy at
small t. Measured here (sklearn digits, ell = 2, d_model 64 x 2 layers, batch 64, lr 2e-3, 400
steps, same seed; held-out valid bound, 297 items x 4 passes, paired t and noise, stderr ~0.023):
masked_ce 2.323, valid_bound 2.338, surrogate 2.385 bits/dim; at 1200 steps masked_ce 2.086,
valid_bound 2.110. Whatever is trained, validation reports the valid bound.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections import deque
from collections.abc import Generator
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from engine.api import CancelToken, SampleRequest
from engine.data import TokenData
from engine.device import autocast
from engine.files.modelfile import tokenizer_metadata
from engine.models import PrimeModel
from engine.prime import OBJECTIVES, add_noise, stratified_times
from engine.sampling import sample
from engine.training import distributed as D
from engine.training.augment import shift_images
from engine.training.checkpoint import (
    FORMAT,
    VERSION,
    CheckpointError,
    check_weights,
    config_digest,
    flatten_optimizer,
    read_checkpoint,
    restore_rng,
    rng_tensors,
    save_verified_model,
    unflatten_optimizer,
    weights_digest,
    write_verified,
)
from engine.training.config import ORDER_KEYS, TrainConfig
from engine.training.evaluate import evaluate
from engine.training.events import TrainEvent, TrainingError, TrainSummary
from engine.training.optim import ema_update, learning_rate, make_optimizer
from engine.training.order import DataOrder, mix_seed
from engine.training.setup import (
    DataSource,
    ModelSource,
    ensure_writable,
    hardware,
    prepare_paths,
    resolve_data,
    resolve_model,
)

# Settings that decide what the run computes: a resume must keep them (a changed learning rate
# turned a 7 bits/dim run into a 19.7 bits/dim one). Cadences, the device and --steps (not below
# the checkpoint's step) may change.
MEANING_KEYS = (
    *ORDER_KEYS,
    "lr",
    "warmup",
    "lr_schedule",
    "min_lr_ratio",
    "weight_decay",
    "beta1",
    "beta2",
    "grad_clip",
    "ema",
    "objective",
    "augment_p",
)
KEPT_SHOWN = ("lr", "lr_schedule", "objective", "batch_size", "grad_accum", "seed", "ema")


def iter_train(
    model: ModelSource,
    train_config: TrainConfig,
    data: DataSource,
    out_path: str | os.PathLike,
    cancel: CancelToken | None = None,
    resume: bool = False,
    *,
    overwrite: bool = False,
    card: dict[str, Any] | None = None,
    save_on_cancel: bool = False,
) -> Generator[TrainEvent, None, TrainSummary]:
    """Train a new model (``model`` is a ModelConfig) or fine-tune one (a model file or PrimeModel).

    ``data`` is a path (an image folder, a text file or folder; preprocessed for the model's
    config), a :class:`TokenData` or a :class:`PreflightReport`. ``out_path`` names the model file
    written at the end (``.safetensors`` appended if missing); the resumable checkpoint is
    ``NAME.ckpt.safetensors`` beside it. ``resume`` continues that checkpoint (same data, model
    and batch settings, else refused). ``overwrite`` allows replacing an existing model file.
    ``card`` adds fields to the model card (a recipe's name and source, say).
    ``save_on_cancel``: a cancel also evaluates and writes the model file ("stop and save"; the
    card says ``stopped_early``); the summary still has ``cancelled=True``. A
    :class:`~engine.training.events.TrainCancelToken` cancelled with ``cancel(save=True)`` asks
    for the same at the moment of cancelling.
    A cancel (``cancel.cancel()``) stops after the current step, writes a checkpoint and returns
    a summary with ``cancelled=True``. Under ``torchrun`` (WORLD_SIZE > 1) the same call runs
    DDP; only rank 0 evaluates and writes.
    """
    info, device = D.setup(train_config.device)
    try:
        trainer = _Trainer(
            model, train_config, data, out_path, cancel, resume, overwrite, info, device, card, save_on_cancel
        )
        return (yield from trainer.run())
    finally:
        D.teardown(info)


def train(*args: Any, **kwargs: Any) -> TrainSummary:
    """Drain :func:`iter_train` (same arguments) and return its summary."""
    gen = iter_train(*args, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


FINAL_EVAL_ITEMS = 4096


class _Trainer:
    def __init__(
        self,
        source: ModelSource,
        cfg: TrainConfig,
        data: DataSource,
        out: str | os.PathLike,
        cancel: CancelToken | None,
        resume: bool,
        overwrite: bool,
        info: D.DistInfo,
        device: torch.device,
        card: dict[str, Any] | None = None,
        save_on_cancel: bool = False,
    ) -> None:
        self.cfg, self.cancel, self.info, self.device = cfg, cancel, info, device
        self.save_on_cancel = save_on_cancel
        self.extra_card = dict(card or {})
        if cfg.batch_size % info.world:
            raise TrainingError(f"batch_size {cfg.batch_size} must be divisible by the {info.world} ranks")
        self.model_path, self.ckpt_path, self.cleaned = prepare_paths(out, resume, overwrite, info.main)
        self.resume_note: dict[str, Any] | None = None
        net, self.parent = resolve_model(source, mix_seed(cfg.seed, 5))
        self.mcfg = net.config
        if cfg.augment_p > 0 and not self.mcfg.augment_shift:
            raise TrainingError(
                "shift augmentation (augment_p) needs an image model built with augment_shift >= 1, "
                "which is told each image's shift; this model has none"
            )
        self.data: TokenData = resolve_data(data, self.mcfg, cfg, self.parent)
        if info.main:
            ensure_writable(self.model_path.parent)
        torch.manual_seed(mix_seed(cfg.seed, info.rank, 11))  # dropout; restored on resume
        self.net = net.to(device).train()
        self.ema = None
        if cfg.ema > 0:
            self.ema = PrimeModel(self.mcfg).to(device).eval()
            self.ema.load_state_dict(self.net.state_dict())
            self.ema.requires_grad_(False)
        self.opt = make_optimizer(self.net, cfg)
        self.step, self.wall_before, self.t0 = 0, 0.0, time.perf_counter()
        self.init_digest = weights_digest(self.net.state_dict())
        if resume:
            self._load_checkpoint()
        self.step_at_start = self.step
        self.ddp = (
            DistributedDataParallel(self.net, device_ids=[device.index] if device.type == "cuda" else None)
            if info.world > 1
            else None
        )
        self.order = DataOrder(self.data.train_index, cfg.seed)
        self.objective = OBJECTIVES[cfg.objective]
        self.gen = torch.Generator()
        self.tokens_per_step = cfg.batch_size * cfg.grad_accum * self.mcfg.seq_length
        self.last_ckpt_step = self.step if resume else -1

    # ------------------------------------------------------------------ checkpoints

    def _meta(self) -> dict[str, str]:
        state = {
            "step": self.step,
            "samples_seen": self.step * self.cfg.batch_size * self.cfg.grad_accum,
            "data_order": {"seed": self.cfg.seed, "train_items": len(self.data.train_index)},
            "wall_s": self.wall_before + (time.perf_counter() - self.t0),
            "init_digest": self.init_digest,
            "world_size": self.info.world,
        }
        data = {**self.data.summary_dict(), "fingerprint": self.data.fingerprint}
        return {
            "format": FORMAT,
            "version": VERSION,
            "state": json.dumps(state),
            "model_config": json.dumps(self.mcfg.to_dict(), sort_keys=True),
            "model_digest": json.dumps(config_digest(self.mcfg.to_dict())),
            "train_config": json.dumps(self.cfg.to_dict()),
            "data": json.dumps(data),
            "parent": json.dumps(self.parent),
            # a BPE model's vocabulary travels with its checkpoint (resume checks it is the same)
            **tokenizer_metadata(self.mcfg),
        }

    def _save_checkpoint(self) -> str:
        tensors = {f"model/{k}": v for k, v in self.net.state_dict().items()}
        if self.ema is not None:
            tensors.update({f"ema/{k}": v for k, v in self.ema.state_dict().items()})
        opt_tensors, opt_meta = flatten_optimizer(self.opt.state_dict())
        tensors.update(opt_tensors)
        tensors.update(rng_tensors())
        meta = self._meta()
        meta["optim"] = json.dumps(opt_meta)
        expected = self.net.state_dict()

        def verify(back: dict[str, torch.Tensor]) -> None:
            check_weights(back, "model/", expected, self.init_digest, str(self.ckpt_path))

        write_verified(self.ckpt_path, tensors, meta, verify, verify_prefix="model/")
        self.last_ckpt_step = self.step
        return str(self.ckpt_path)

    def _load_checkpoint(self) -> None:
        tensors, meta = read_checkpoint(self.ckpt_path)
        where = str(self.ckpt_path)
        if meta["model_digest"] != config_digest(self.mcfg.to_dict()):
            was, now = meta["model_config"], self.mcfg.to_dict()
            diff = [
                f"{k} {was.get(k)} -> {now.get(k)}"
                for k in sorted(set(was) | set(now))
                if was.get(k) != now.get(k)
            ]
            raise CheckpointError(
                f"cannot resume {where}: it was made for a different model ({'; '.join(diff)})"
            )
        was_vocab = meta["vocabulary_digest"] or "bytes"
        now_vocab = self.mcfg.vocabulary.digest if self.mcfg.vocabulary is not None else "bytes"
        # checkpoints written before vocabularies were stored have no digest: the data fingerprint
        # (the tokens themselves) is then the check
        if self.mcfg.modality == "text" and meta["vocabulary_digest"] and was_vocab != now_vocab:
            raise CheckpointError(
                f"cannot resume {where}: it was trained with another tokenizer (vocabulary {was_vocab}, "
                f"now {now_vocab}); resume with the same data and vocabulary size, or start a new run"
            )
        old_fp = meta["data"].get("fingerprint")
        if old_fp != self.data.fingerprint:
            raise CheckpointError(
                f"cannot resume {where}: it was trained on different data (fingerprint {old_fp}, now "
                f"{self.data.fingerprint}: files, preprocessing or the split changed); resume with the "
                "original data or start a new run with another --out"
            )
        old_cfg = meta["train_config"]
        changed = [
            f"{k} {old_cfg.get(k)} -> {getattr(self.cfg, k)}"
            for k in MEANING_KEYS
            if k in old_cfg and old_cfg.get(k) != getattr(self.cfg, k)
        ]
        if changed:
            raise CheckpointError(
                f"cannot resume {where}: these settings would change what the run computes "
                f"({'; '.join(changed)}); resume with the checkpoint's settings, or start a new run "
                "with another --out"
            )
        if not _same_parent(meta["parent"], self.parent):
            was = (meta["parent"] or {}).get("name") or "a new, randomly initialised model"
            now = (self.parent or {}).get("name") or "a new model"
            raise CheckpointError(
                f"cannot resume {where}: the run started from {was}, not from {now}; resume without "
                "--from (or with the run's own parent), or start a new run with another --out"
            )
        state = meta["state"]
        step = state["step"]
        if step > self.cfg.steps:
            raise CheckpointError(
                f"cannot resume {where}: it is at step {step}, beyond the {self.cfg.steps} steps asked for; "
                f"give --steps {step} or more"
            )
        expected_seen = step * self.cfg.batch_size * self.cfg.grad_accum
        if state["samples_seen"] != expected_seen:
            raise CheckpointError(
                f"{where}: the checkpoint says {state['samples_seen']} samples seen at step {step}, not "
                f"{expected_seen}; the file is damaged"
            )
        try:
            self.net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
            if self.ema is not None:
                ema_state = {k[4:]: v for k, v in tensors.items() if k.startswith("ema/")}
                self.ema.load_state_dict(ema_state if ema_state else self.net.state_dict())
            self.opt.load_state_dict(unflatten_optimizer(tensors, meta["optim"]))
            restore_rng(tensors)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            text = " ".join(str(exc).split())[:300]
            raise CheckpointError(
                f"{where}: the checkpoint's weights or optimiser state do not fit ({text})"
            ) from None
        self.step, self.wall_before = int(step), float(state["wall_s"])
        self.init_digest = state["init_digest"]
        self.resumed_from = self.step
        changes = {
            k: [old_cfg.get(k), getattr(self.cfg, k)]
            for k in sorted(old_cfg)
            if k not in MEANING_KEYS
            and hasattr(self.cfg, k)
            and _differs(old_cfg.get(k), getattr(self.cfg, k))
        }
        self.resume_note = {
            "step": self.step,
            "kept": {k: old_cfg.get(k) for k in KEPT_SHOWN if k in old_cfg},
            "changed": changes,
        }

    # ------------------------------------------------------------------ one step

    def _train_step(self) -> tuple[float, float]:
        cfg, codec, schedule = self.cfg, self.net.codec, self.net.schedule
        module = self.ddp if self.ddp is not None else self.net
        b = cfg.batch_size // self.info.world
        lr = learning_rate(cfg, self.step + 1)
        for group in self.opt.param_groups:
            group["lr"] = lr
        total = torch.zeros((), device=self.device)
        for micro in range(cfg.grad_accum):
            position = (self.step * cfg.grad_accum + micro) * cfg.batch_size + self.info.rank * b
            x0 = self.data.batch(self.order.take(position, b)).to(self.device)  # (b, L)
            self.gen.manual_seed(mix_seed(cfg.seed, self.step, micro, self.info.rank))
            shift = None
            if cfg.augment_p > 0:  # drawn first from the step's seed, so a resumed step redraws them
                x0, dy, dx = shift_images(x0, self.mcfg, cfg.augment_p, self.gen)
                shift = self.net.shift_index(dy, dx)
            t = stratified_times(b, self.gen).to(self.device)  # (b,) on the model device, like y_0
            y_t = add_noise(codec.encode(x0), t, schedule, codec, self.gen)  # (b, L, ell)
            sync = micro == cfg.grad_accum - 1 or self.ddp is None
            ctx = self.ddp.no_sync() if not sync else contextlib.nullcontext()
            with ctx:
                with autocast(self.device, cfg.bf16):
                    logits = module(y_t, shift)  # (b, L, C)
                loss = (
                    self.objective(logits.float(), y_t, x0, t, codec, schedule).mean() / self.mcfg.seq_length
                )
                (loss / cfg.grad_accum).backward()
            total += loss.detach() / cfg.grad_accum
        if self.info.world > 1:  # report the global batch's loss, not this rank's share
            total = D.mean_over_ranks(total, self.info)
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        norm_t = torch.nn.utils.clip_grad_norm_(self.net.parameters(), max_norm)
        total, norm = torch.stack([total.float(), norm_t.float().to(total.device)]).tolist()  # one sync
        if not (math.isfinite(total) and math.isfinite(norm)):
            self.opt.zero_grad(set_to_none=True)
            raise TrainingError(
                f"the loss or its gradient became {total if not math.isfinite(total) else norm} at step "
                f"{self.step + 1} (not applied); lower the learning rate (--lr) from {cfg.lr} or keep "
                "gradient clipping on, then --resume from the last checkpoint"
            )
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        if self.ema is not None:
            ema_update(self.ema, self.net, cfg.ema, self.step)
        return total, norm

    # ------------------------------------------------------------------ the run

    def _final_model(self) -> PrimeModel:
        return self.ema if self.ema is not None else self.net

    def _start_message(self) -> str:
        text = f"training on {self.device}"
        note = self.resume_note
        if note is not None:
            kept = ", ".join(f"{k} {v}" for k, v in note["kept"].items())
            text += f"; resumed at step {note['step']} with the checkpoint's settings ({kept})"
            if note["changed"]:
                text += "; changed: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in note["changed"].items())
        if self.cleaned:
            text += "; " + "; ".join(self.cleaned)
        return text

    def _evaluate(self, final: bool = False):
        """The valid bound on eval_batches batches; the final one on every held-out item (up to 4096)."""
        items = self.cfg.eval_batches * self.cfg.batch_size
        if final:
            items = max(items, min(len(self.data.val_index), FINAL_EVAL_ITEMS))
        return evaluate(
            self._final_model(),
            self.data,
            batch_size=self.cfg.batch_size,
            max_items=items,
            seed=self.cfg.seed,
            bf16=self.cfg.bf16,
            weights="ema" if self.ema is not None else "model",
        )

    def _preview(self) -> torch.Tensor:
        model = self._final_model()
        was = model.training
        request = SampleRequest(
            num_samples=self.cfg.preview_samples, steps=self.cfg.preview_steps, seed=self.cfg.seed
        )
        try:
            return sample(model, request).tokens.cpu()
        finally:
            model.train(was)

    def _event(self, kind: str, **kw: Any) -> TrainEvent:
        return TrainEvent(kind=kind, step=self.step, steps=self.cfg.steps, objective=self.cfg.objective, **kw)

    def run(self) -> Generator[TrainEvent, None, TrainSummary]:
        cfg, main = self.cfg, self.info.main
        self.t0 = time.perf_counter()
        start_info = {
            "model_parameters": self.net.num_parameters(),
            "data": self.data.summary_dict(),
            "device": str(self.device),
            "threads": torch.get_num_threads() if self.device.type == "cpu" else None,
            "world_size": self.info.world,
            "rank": self.info.rank,
            "resumed_from": self.step if self.step_at_start else None,
            "model_path": str(self.model_path),
            "checkpoint_path": str(self.ckpt_path),
            "parent": self.parent,
            "train_config": cfg.to_dict(),
            "resume": self.resume_note,
            "cleaned": self.cleaned,
        }
        yield self._event("start", info=start_info, message=self._start_message())
        recent: deque[tuple[float, int]] = deque(maxlen=20)
        recent.append((time.perf_counter(), self.step))
        cancelled = False
        while self.step < cfg.steps:
            if D.any_true(self.cancel is not None and self.cancel.cancelled, self.info, self.device):
                cancelled = True
                break
            loss, norm = self._train_step()
            now = time.perf_counter()
            recent.append((now, self.step))
            (t_a, s_a), (t_b, s_b) = recent[0], recent[-1]
            tps = self.tokens_per_step * (s_b - s_a) / max(t_b - t_a, 1e-9)
            done_here = self.step - self.step_at_start
            eta = (now - self.t0) / done_here * (cfg.steps - self.step)
            yield self._event(
                "step",
                loss=loss,
                lr=self.opt.param_groups[0]["lr"],
                grad_norm=norm,
                tokens_per_s=tps,
                elapsed_s=self.wall_before + now - self.t0,
                eta_s=eta,
            )
            last = self.step == cfg.steps
            if main and cfg.eval_every and self.step % cfg.eval_every == 0 and not last:
                yield self._event("eval", eval=self._evaluate())
            if main and cfg.preview_every and self.step % cfg.preview_every == 0:
                yield self._event("preview", preview=self._preview())
            if main and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and not last:
                yield self._event("checkpoint", checkpoint=self._save_checkpoint())
        if cancelled:
            return (yield from self._finish_cancelled())
        return (yield from self._finish())

    def _summary(self, cancelled: bool, model_path: str | None, final_eval=None, card=None) -> TrainSummary:
        ckpt = str(self.ckpt_path) if self.ckpt_path.exists() and self.info.main else None
        return TrainSummary(
            steps_done=self.step,
            steps=self.cfg.steps,
            cancelled=cancelled,
            model_path=model_path,
            checkpoint_path=ckpt,
            final_eval=final_eval,
            wall_s=self.wall_before + time.perf_counter() - self.t0,
            tokens_seen=self.step * self.tokens_per_step,
            card=card or {},
            model=self._final_model(),
        )

    def _finish_cancelled(self) -> Generator[TrainEvent, None, TrainSummary]:
        if self.info.main and self.step > self.step_at_start and self.last_ckpt_step != self.step:
            yield self._event("checkpoint", checkpoint=self._save_checkpoint())
        wants_save = self.save_on_cancel or bool(getattr(self.cancel, "save_requested", False))
        if D.any_true(wants_save, self.info, self.device) and self.step > 0:
            summary = yield from self._finish(stopped_early=True)
            return dataclasses.replace(summary, cancelled=True)
        message = (
            f"cancelled at step {self.step}; resume with --resume from {self.ckpt_path}"
            if self.info.main and self.ckpt_path.exists()
            else "cancelled before the first step; nothing saved"
        )
        yield self._event("cancelled", message=message)
        D.barrier(self.info)
        return self._summary(True, None)

    def _finish(self, stopped_early: bool = False) -> Generator[TrainEvent, None, TrainSummary]:
        D.check_identical(self.net, self.info, self.device)
        final_eval, card, model_path = None, {}, None
        if self.info.main:
            final_eval = self._evaluate(final=True)
            yield self._event("eval", eval=final_eval)
            if self.last_ckpt_step != self.step:
                yield self._event("checkpoint", checkpoint=self._save_checkpoint())
            card = self._card(final_eval)
            if stopped_early:
                card["training"]["stopped_early"] = True
                card["training"]["planned_steps"] = self.cfg.steps
            model_path = str(
                save_verified_model(self.model_path, self._final_model(), card, self.init_digest)
            )
            yield self._event(
                "cancelled" if stopped_early else "done",
                eval=final_eval,
                checkpoint=model_path,
                message=f"{'stopped early at step ' + str(self.step) + '; ' if stopped_early else ''}"
                f"saved {model_path}; {final_eval.line()}",
            )
        D.barrier(self.info)
        return self._summary(False, model_path, final_eval, card)

    def _card(self, final_eval) -> dict[str, Any]:
        cfg = self.cfg
        wall = self.wall_before + time.perf_counter() - self.t0
        return {
            "name": self.model_path.name[: -len(".safetensors")],
            "data": self.data.summary_dict(),
            "preprocessing": {
                "modality": self.mcfg.modality,
                "fit": cfg.fit if self.mcfg.modality == "image" else None,
                "text_mode": cfg.text_mode if self.mcfg.modality == "text" else None,
                "geometry": {
                    "height": self.mcfg.height,
                    "width": self.mcfg.width,
                    "channels": self.mcfg.channels,
                    "seq_len": self.mcfg.seq_length,
                    "levels": self.mcfg.num_classes,
                },
            },
            "training": {
                "steps": self.step,
                "batch_size": cfg.batch_size,
                "grad_accum": cfg.grad_accum,
                "objective": cfg.objective,
                "objective_note": "training loss only; the reported metric is the valid bound",
                "lr": cfg.lr,
                "lr_schedule": cfg.lr_schedule,
                "ema": cfg.ema,
                "weights": "ema" if self.ema is not None else "final",
                "tokens_seen": self.step * self.tokens_per_step,
                "wall_time_s": round(wall, 2),
                "hardware": hardware(self.device, self.info.world),
                "config": cfg.to_dict(),
            },
            "metrics": {"valid_bound": final_eval.to_dict()},
            "parent": self.parent,
            **self.extra_card,
        }


def _differs(a: Any, b: Any) -> bool:
    """Two TrainConfig values differ (JSON lists and tuples compare equal)."""
    norm = lambda v: list(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
    return norm(a) != norm(b)


def _same_parent(was: dict[str, Any] | None, now: dict[str, Any] | None) -> bool:
    """The parent a checkpoint records is the one given now (by name and card, not by path)."""
    if was is None or now is None:
        return was is None and now is None
    keys = ("name", "card")
    return json.dumps({k: was.get(k) for k in keys}, sort_keys=True, default=str) == json.dumps(
        {k: now.get(k) for k in keys}, sort_keys=True, default=str
    )
