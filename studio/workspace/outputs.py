"""Outputs of a session on disk: save every result, export PNG / GIF / text, restore settings.

A mixin of :class:`studio.workspace.session.Session` (it uses ``self.host``, ``self.views``,
``self.handle``, ``self.entry``, ``self.load_model`` and ``self.renderer_for``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtWidgets import QFileDialog

from studio import enginelink, render
from studio.history import store
from studio.history.entries import Entry


class OutputsMixin:
    """Saving and exporting entries, restoring settings from files."""

    def entry_images(self, entry: Entry) -> np.ndarray:
        """uint8 (N, H, W, 3) final images of an image entry."""
        images = enginelink.tokens_to_images(entry.result.tokens, entry.model.config)
        return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images

    def entry_texts(self, entry: Entry) -> list[str]:
        """Decoded text of every sample of a text entry (cut to the chosen length)."""
        length = int(entry.settings.get("length") or entry.model.config.seq_length)
        return [enginelink.tokens_to_text(t[:length]) for t in entry.result.tokens]

    def save_entry(self, entry: Entry) -> list[Path]:
        """Save an output in the data folder with its full settings."""
        name = f"{store.timestamp()}-{entry.id:04d}-{entry.kind}"
        folder = self.host.outputs_dir
        if entry.model.config.modality == "image":
            path = store.save_png(
                folder / f"{name}.png", render.grid(self.entry_images(entry)), entry.settings
            )
            store.sidecar(path, entry.settings)
        else:
            path = store.save_text(folder / f"{name}.txt", self.entry_texts(entry), entry.settings)
        entry.files.append(path)
        return entry.files

    def export_current(self, kind: str) -> None:
        """Export the shown entry."""
        if self.entry is None:
            self.host.flash("Nothing to export yet")
            return
        self.export_entry(self.entry.id, kind)

    def export_entry(self, entry_id: int, kind: str, path: str | None = None) -> Path | None:
        """Export an entry as PNG (settings in text chunks), animated GIF of the denoising, or text."""
        entry = self.host.history.get(entry_id)
        image = entry.model.config.modality == "image"
        if kind in ("png", "gif") and not image:
            kind = "text"
        suffix = {"png": "PNG (*.png)", "gif": "GIF (*.gif)", "text": "Text (*.txt)"}[kind]
        if path is None:
            default = str(Path.home() / f"prime-{entry.id}.{'txt' if kind == 'text' else kind}")
            path, _ = QFileDialog.getSaveFileName(
                self.views.canvas.window(), f"Export {kind.upper()}", default, suffix
            )
            if not path:
                return None
        out = Path(path)
        if kind == "png":
            store.save_png(out, render.grid(self.entry_images(entry)), entry.settings)
        elif kind == "gif":
            renderer = self.renderer_for(entry.model)
            frames = [
                render.grid(renderer.image_arrays(entry.trajectory.state_at(k)))
                for k in store.frame_steps(entry.steps_done)
            ]
            scale = max(1, 256 // max(frames[0].shape[:2]))
            store.save_gif(out, frames, scale=scale)
        else:
            texts = self.entry_texts(entry) if not image else [str(entry.result.tokens.tolist())]
            store.save_text(out, texts, entry.settings)
        self.host.flash(f"Exported {out}")
        return out

    def restore_png(self, path: str) -> dict[str, Any]:
        """Restore the generation settings a studio (or ``prime generate``) PNG carries."""
        settings = store.read_png_settings(path)
        values = dict(settings)
        values["seed_mode"] = "fixed"  # reproduce that output
        self.views.generate_panel.set_values(values)
        model = settings.get("model")
        note = ""
        if model and (self.handle is None or self.handle.name != model):
            note = f" (made with model {model!r}: load it to reproduce the output)"
            try:
                path_found = enginelink.eng.resolve_model(model)
            except Exception:  # noqa: BLE001 - not in the library: just say so
                path_found = None
            if path_found is not None:
                note = f" and loading {model}"
                self.host.spawn(self.load_model(str(path_found)))
        self.host.flash(f"Restored settings from {Path(path).name}{note}", 8000)
        return settings
