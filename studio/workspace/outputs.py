"""Outputs of a session on disk: save every result with its steps, reopen earlier ones, export.

A mixin of :class:`studio.workspace.session.Session` (it uses ``self.host``, ``self.views``,
``self.handle``, ``self.entry``, ``self.load_model``, ``self.renderer_for`` and ``self.show_entry``).

- **Saving**: every output is written when it is made (:meth:`save_entry`): its trajectory (every
  step, predictions included), the PNG or text and the settings (:func:`studio.history.store.write_output`).
  A failed save (a full disk) leaves no file of that output and says so; the entry stays in the
  session's history.
- **Reopening**: :meth:`open_output` reads an output of any earlier session back into a history
  entry that scrubs, hovers, shows predictions, compares, exports and branches like a fresh one.
  Its model is loaded when the library still has it (:meth:`ensure_model`); otherwise the entry
  is shown from the model config saved with it and can be viewed and exported, not branched.
  Outputs saved before steps were recorded restore their settings and say they have no steps.
- **Export**: PNG at a chosen scale (settings in text chunks), animated GIF or WebP of the
  denoising at a chosen frame rate, text; the whole output or one sample. Writes are atomic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import itertools
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtWidgets import QFileDialog

from studio import enginelink, render
from studio.bridge import ModelHandle
from studio.enginelink import eng
from studio.history import store
from studio.history.entries import Entry

DEFAULT_FPS = 12.0
EXPORT_TARGET_PX = 512  # default export scale: the picture's longer side reaches about this
SAVED_TARGET_PX = 256  # the PNG kept in the outputs folder
MAX_SCALE = 64
EXPORT_KINDS = {
    "png": ("png", "PNG (*.png)"),
    "gif": ("gif", "GIF (*.gif)"),
    "webp": ("webp", "WebP (*.webp)"),
    "text": ("txt", "Text (*.txt)"),
}
_offline_keys = itertools.count(-1, -1)  # handles of models that are not loaded have keys < 0


class NoRecordedSteps(ValueError):
    """An output saved before trajectories were recorded: only its settings can be restored."""


def auto_scale(height: int, width: int, target: int = EXPORT_TARGET_PX) -> int:
    """Integer upscale so the longer side of a (height, width) picture reaches about ``target`` px."""
    return max(1, min(MAX_SCALE, math.ceil(target / max(1, height, width))))


def _per_sample(values: Any, n: int) -> list[int] | None:
    """``values`` as N ints, or None when it is not a list of N numbers."""
    if isinstance(values, list) and len(values) == n and all(isinstance(v, (int, float)) for v in values):
        return [int(v) for v in values]
    return None


def is_loaded(handle: ModelHandle) -> bool:
    """True when the model lives on the engine thread (False for an output's saved config only)."""
    return handle.key > 0


class OutputsMixin:
    """Saving, reopening and exporting entries, restoring settings from files."""

    export_fps: float = DEFAULT_FPS
    export_scale: int = 0  # 0 = automatic (large enough to see)

    # ------------------------------------------------------------------ pictures and text
    def entry_images(self, entry: Entry, sample: int | None = None) -> np.ndarray:
        """uint8 (N, H, W, 3) final images of an image entry (or (1, H, W, 3) of one sample)."""
        tokens = entry.result.tokens if sample is None else entry.result.tokens[sample : sample + 1]
        images = enginelink.tokens_to_images(tokens, entry.model.config)
        return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images

    def entry_texts(self, entry: Entry, sample: int | None = None) -> list[str]:
        """Decoded text of every sample of a text entry (cut to the chosen length), or of one."""
        length = int(entry.settings.get("length") or entry.model.config.seq_length)
        tokens = entry.result.tokens if sample is None else entry.result.tokens[sample : sample + 1]
        tokenizer = enginelink.tokenizer_of(entry.model.config)
        return [enginelink.tokens_to_text(t[:length], tokenizer) for t in tokens]

    # ------------------------------------------------------------------ saving
    def output_record(self, entry: Entry, name: str) -> dict[str, Any]:
        """What the trajectory file keeps beside the steps: enough to rebuild the entry."""
        request = entry.result.request.to_dict()
        request.pop("conditioned", None)
        return {
            "settings": dict(entry.settings),
            "model": {
                "name": entry.model.name,
                "path": entry.model.path,
                "config": entry.model.config.to_dict(),
                # a BPE model's vocabulary stays in its model file; this names which one it was
                "tokenizer_digest": enginelink.tokenizer_of(entry.model.config).digest,
            },
            "request": request,
            "entry": {
                "output": name,
                "kind": entry.kind,
                "branch_step": entry.branch_step,
                "parent_output": entry.settings.get("parent_output"),
                "created": entry.created,
                "seconds": float(entry.result.seconds),
            },
        }

    def save_entry(self, entry: Entry) -> list[Path]:
        """Save an output in the data folder with its trajectory and full settings.

        Raises:
            OSError: the save failed (``eng.DiskFullError`` for a full disk); nothing of this
                output is left on disk.
        """
        name = f"{store.timestamp()}-{entry.id:04d}-{entry.kind}"
        settings = dict(entry.settings, output=name)
        if entry.model.config.modality == "image":
            grid = render.grid(self.entry_images(entry))
            scale = auto_scale(*grid.shape[:2], target=SAVED_TARGET_PX)

            def write_main(path: Path) -> Path:
                return store.save_png(path, grid, settings, scale=scale)

            suffix = ".png"
        else:
            text = store.join_texts(self.entry_texts(entry))

            def write_main(path: Path) -> Path:
                return eng.write_text(path, text)

            suffix = ".txt"
        saved = store.write_output(
            self.host.outputs_dir,
            name,
            suffix,
            write_main,
            entry.trajectory,
            self.output_record(entry, name),
            settings,
        )
        entry.output = name
        entry.files = [p for p in (saved.main, saved.sidecar, saved.trajectory) if p.exists()]
        return entry.files

    def save_or_report(self, entry: Entry) -> bool:
        """:meth:`save_entry`, telling the user clearly when it fails; True when saved."""
        try:
            self.save_entry(entry)
        except OSError as exc:
            folder = self.host.outputs_dir
            if isinstance(exc, eng.DiskFullError) or exc.errno == errno.ENOSPC:
                try:
                    free = f", {shutil.disk_usage(folder).free / 1e6:.1f} MB free"
                except OSError:
                    free = ""
                why = f"the disk holding {folder} is full{free}"
            else:
                why = f"{exc.strerror or exc} ({exc.filename or folder})"
            self.host.report_error(
                f"Output #{entry.id} was not saved",
                OSError(
                    f"{why}. Nothing of it was written and earlier outputs are untouched; it stays in "
                    "this session's history: free some space, then export it."
                ),
            )
            return False
        return True

    # ------------------------------------------------------------------ reopening
    def open_saved(self, path: str) -> Entry | None:
        """An output from an earlier session: restore its settings and reopen it fully.

        Outputs saved before steps were recorded only restore their settings (and say so); a
        damaged trajectory file is reported and changes nothing else.
        """
        saved = store.SavedOutput(Path(path))
        existing = self.host.history.by_output(saved.name)
        if existing is not None:
            self.show_entry(existing)
            return existing
        try:
            self._restore_saved_settings(saved)
        except ValueError as exc:
            self.host.report_error(f"Cannot read the settings of {saved.main.name}", exc)
        try:
            entry = self.open_output(saved.main)
        except NoRecordedSteps as exc:
            self.host.flash(str(exc), 10000)
            return None
        except (ValueError, OSError) as exc:
            self.host.report_error(f"Cannot reopen {saved.name}", exc)
            return None
        self.host.spawn(self._bind_model(entry))
        return entry

    def open_quietly(self, path: str) -> Entry | None:
        """Reopen a saved output without showing it (to compare or export it); errors are shown."""
        try:
            return self.open_output(path, show=False)
        except (ValueError, OSError) as exc:
            self.host.report_error(f"Cannot reopen {Path(path).stem}", exc)
            return None

    def _restore_saved_settings(self, saved: store.SavedOutput) -> None:
        values = store.validate_settings(saved.settings(), saved.sidecar.name)  # all checked, or none applied
        if not values and saved.is_image:
            values = store.read_png_settings(saved.main)
        self.views.generate_panel.set_values(dict(values, seed_mode="fixed"))

    def open_output(self, main: str | Path, show: bool = True) -> Entry:
        """Read a saved output (its PNG or text path) back into a history entry and show it.

        Raises:
            NoRecordedSteps: an output saved before steps were recorded.
            ValueError: a truncated, foreign or inconsistent trajectory file (``TrajectoryFileError``).
        """
        saved = store.SavedOutput(Path(main))
        existing = self.host.history.by_output(saved.name)
        if existing is not None:
            if show:
                self.show_entry(existing)
            return existing
        if not saved.has_steps:
            raise NoRecordedSteps(
                f"{saved.main.name} was saved before steps were recorded: it has no recorded steps "
                "to show (its settings were restored)"
            )
        traj, record = eng.load_trajectory(saved.trajectory)
        entry = self._entry_from_record(saved, traj, record)
        self.views.history_panel.attach(entry, saved.main)
        if show:
            self.show_entry(entry)
        return entry

    def _entry_from_record(self, saved: store.SavedOutput, traj: Any, record: dict[str, Any]) -> Entry:
        where = saved.trajectory.name
        model = record.get("model")
        if not isinstance(model, dict):
            raise ValueError(f"{where}: the record does not say which model made it")
        try:
            config = eng.ModelConfig.from_dict(model.get("config"))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: invalid model config ({exc})") from None
        if (config.num_classes, config.ell) != (traj.codec.num_classes, traj.codec.ell):
            raise ValueError(f"{where}: the steps do not match the model config saved with them")
        n, length, _ = traj.shape
        if length != config.seq_length:
            raise ValueError(f"{where}: {length} tokens per sample, but the model makes {config.seq_length}")
        fields = {f.name for f in dataclasses.fields(eng.SampleRequest)} - {"condition"}
        raw = record.get("request") if isinstance(record.get("request"), dict) else {}
        try:
            request = eng.SampleRequest(**{k: v for k, v in raw.items() if k in fields})
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: invalid sampler settings ({exc})") from None
        if request.steps != traj.steps or request.num_samples != n:
            request = request.replace(steps=traj.steps, num_samples=n)
        meta = record.get("entry") if isinstance(record.get("entry"), dict) else {}
        settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
        settings = dict(settings or saved.settings())
        handle = self._handle_for(str(model.get("name") or settings.get("model") or "model"), config, model)
        if handle.config.vocabulary is None and config.tokenizer == "bpe":
            # not loaded: the vocabulary comes from the model file (shown as ids if it is gone)
            config = enginelink.with_vocabulary(
                config, str(model.get("path") or ""), str(model.get("tokenizer_digest") or "")
            )
            handle = dataclasses.replace(handle, config=config)
        result = eng.SampleResult(
            tokens=traj.tokens_at(traj.steps_done),
            trajectory=traj,
            nfe=_per_sample(settings.get("nfe"), n) or traj.nfe(),  # the run's own count
            idle_steps=_per_sample(settings.get("idle_steps"), n) or traj.idle_steps(),
            seconds=float(meta.get("seconds") or settings.get("seconds") or 0.0),
            cancelled=traj.steps_done < traj.steps,
            steps_done=traj.steps_done,
            request=request,
        )
        parent = (
            self.host.history.by_output(str(meta.get("parent_output"))) if meta.get("parent_output") else None
        )
        branch_step = meta.get("branch_step")
        kind = str(meta.get("kind") or settings.get("kind") or "generate")
        entry = self.host.history.add(
            kind,
            handle,
            settings,
            result,
            parent.id if parent else None,
            int(branch_step) if isinstance(branch_step, int) else None,
        )
        entry.output, entry.reopened = saved.name, True
        entry.files = [p for p in (saved.main, saved.sidecar, saved.trajectory) if p.exists()]
        if isinstance(meta.get("created"), (int, float)):
            entry.created = float(meta["created"])
        return entry

    def _handle_for(self, name: str, config: Any, model: dict[str, Any]) -> ModelHandle:
        """A loaded handle of the same model file and config, else one that holds only the config."""
        path = str(model.get("path") or "")
        for handle in [*self._loaded.values(), self.handle]:
            if (
                handle is not None
                and path
                and handle.path == path
                and handle.config.to_dict() == config.to_dict()
            ):
                return handle
        return ModelHandle(next(_offline_keys), name, config, {}, path)

    async def ensure_model(self, entry: Entry) -> ModelHandle:
        """Load the model a reopened entry was made with (to branch or hover); raise if it is gone."""
        if is_loaded(entry.model):
            return entry.model
        offline = entry.model
        source = offline.path if offline.path and Path(offline.path).is_file() else offline.name
        if not offline.path:
            raise ValueError(
                f"{entry.title()} was made with {offline.name}, a model that was never saved to a "
                "file: it can be viewed, compared and exported, not branched"
            )
        try:
            path = eng.resolve_model(source)
        except ValueError:
            raise ValueError(
                f"{entry.title()} was made with model {offline.name!r}, which no longer exists "
                f"({offline.path or 'not in the library'}): it can be viewed, compared and exported; "
                "import or train that model again to branch from it"
            ) from None
        current = self.handle
        handle = await self.load_model(str(path), recommend=False)  # the output's settings stay
        vocab = offline.config.vocabulary
        other_vocab = vocab is not None and enginelink.tokenizer_of(handle.config).digest != vocab.digest
        if handle.config.to_dict() != offline.config.to_dict() or other_vocab:
            if current is not None:
                self.set_model(current, recommend=False)
            raise ValueError(
                f"{entry.title()}: the model file {path} has changed since this output was made "
                "(another configuration): it can be viewed and exported, not branched"
            )
        for other in self.host.history.entries.values():  # every reopened entry of that model
            if other.model.key == offline.key:
                other.model = handle
        return handle

    async def _bind_model(self, entry: Entry) -> None:
        try:
            await self.ensure_model(entry)
        except ValueError as exc:
            self.host.flash(str(exc), 12000)
            return
        if self.entry is entry:
            self.show_entry(entry, self.views.timeline.value())

    # ------------------------------------------------------------------ export
    def export_current(self, kind: str) -> None:
        """Export the shown entry."""
        if self.entry is None:
            self.host.flash("Nothing to export yet")
            return
        self.export_entry(self.entry.id, kind)

    def export_entry(
        self,
        entry_id: int,
        kind: str,
        path: str | None = None,
        sample: int | None = None,
        scale: int | None = None,
        fps: float | None = None,
    ) -> Path | None:
        """Export an entry (or one ``sample`` of it) as PNG, animated GIF or WebP, or text.

        ``scale``: integer enlargement (default :attr:`export_scale`, 0 = large enough to see);
        ``fps``: frames per second of an animation (default :attr:`export_fps`). Failures (a full
        disk, no WebP support) are shown to the user and return None.
        """
        entry = self.host.history.get(entry_id)
        image = entry.model.config.modality == "image"
        if kind in ("png", "gif", "webp") and not image:
            kind = "text"
        ext, pattern = EXPORT_KINDS[kind]
        if path is None:
            tail = f"-sample{sample + 1}" if sample is not None else ""
            default = str(Path.home() / f"prime-{entry.output or entry.id}{tail}.{ext}")
            path, _ = QFileDialog.getSaveFileName(
                self.views.canvas.window(), f"Export {kind.upper()}", default, pattern
            )
            if not path:
                return None
        out = Path(path)
        settings = dict(entry.settings)
        if sample is not None:
            settings["sample"] = sample
        try:
            if kind == "png":
                grid = render.grid(self.entry_images(entry, sample))
                factor = scale or self.export_scale or auto_scale(*grid.shape[:2])
                store.save_png(out, grid, dict(settings, scale=factor), scale=factor)
            elif kind in ("gif", "webp"):
                renderer = self.renderer_for(entry.model)
                rows = slice(None) if sample is None else slice(sample, sample + 1)
                frames = [
                    render.grid(renderer.image_arrays(entry.trajectory.state_at(k)[rows]))
                    for k in store.frame_steps(entry.steps_done)
                ]
                factor = scale or self.export_scale or auto_scale(*frames[0].shape[:2])
                store.save_animation(out, frames, fps=fps or self.export_fps, scale=factor, kind=kind)
            else:
                texts = (
                    self.entry_texts(entry, sample)
                    if not image
                    else [json.dumps(entry.result.tokens.tolist())]
                )
                store.save_text(out, texts, settings)
        except (OSError, ValueError) as exc:
            self.host.report_error(f"Could not export {out.name}", exc)
            return None
        self.host.flash(f"Exported {out}")
        return out

    async def restore_png_async(self, path: str) -> dict[str, Any]:
        """:meth:`restore_png` with the file read on a worker thread, so the window never waits on it."""
        settings = await asyncio.to_thread(store.read_png_settings, path)
        return self.apply_png_settings(path, settings)

    def restore_png(self, path: str) -> dict[str, Any]:
        """Restore the generation settings a studio (or ``prime generate``) PNG carries."""
        return self.apply_png_settings(path, store.read_png_settings(path))

    def apply_png_settings(self, path: str, settings: dict[str, Any]) -> dict[str, Any]:
        """Apply settings read (and validated) from the PNG at ``path``; never loads a model file."""
        values = dict(settings)
        values["seed_mode"] = "fixed"  # reproduce that output
        self.views.generate_panel.set_values(values)
        model = settings.get("model")
        note = ""
        if model and not store.is_library_name(model):
            # a PNG names whatever it likes: a file path is never loaded without asking
            model, note = (
                None,
                (
                    f"; it names the model file {str(settings['model'])[:200]!r}, which is not loaded "
                    "automatically (import it into the library if you trust it)"
                ),
            )
        if model and (self.handle is None or self.handle.name != model):
            try:
                path_found = enginelink.eng.resolve_model(str(model))
            except Exception:  # noqa: BLE001 - not in the library: just say so
                path_found = None
            if path_found is not None:
                note = f" and loading {model}"
                # the settings just restored stay: not the ones the model recommends
                self.host.spawn(self.load_model(str(path_found), recommend=False))
            else:
                note = (
                    f"; it was made with model {model!r}, which is not in the library any more "
                    "(import or train it to reproduce the output)"
                )
        self.host.flash(f"Restored settings from {Path(path).name}{note}", 10000)
        return settings
