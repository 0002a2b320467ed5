"""The Gallery tab: every saved output, all of its samples, its metadata; branch, export, delete.

Left, the outputs of every session (newest first; filter by model). Selecting one shows crisp
(nearest-neighbour) thumbnails of *all* its samples, a full-size view of the chosen sample (or of
the whole grid) and a metadata panel: model, seed, steps, sampler settings, NFE, idle steps, time
and, for branches, the parent. The chosen sample (or the whole output) can be branched from a step
or exported (PNG at a scale, GIF / WebP of the denoising at a frame rate, text). *Delete* moves an
output's files to the outputs folder's ``.trash/``; *Undo* (Ctrl+Z) puts them back.

The panel reads the outputs folder itself (:mod:`studio.history.store`) and asks the window it is
given (``outputs_dir``, ``history``, ``history_panel``, ``session``, ``spawn``, ``flash``,
``report_error``, ``tabs``) to reopen, branch and export; it imports nothing of the workspace.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QIcon, QImage, QKeySequence, QPainter, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio import enginelink, panels, render
from studio.enginelink import eng
from studio.history import store

ALL_MODELS = "All models"
THUMB = 72  # outputs list icon size, px
SAMPLE_THUMB = 64  # samples list icon size, px
NAME_ROLE = Qt.ItemDataRole.UserRole
MODEL_ROLE = Qt.ItemDataRole.UserRole + 1


@dataclass
class Details:
    """What the gallery shows of one saved output (read once, cached)."""

    saved: store.SavedOutput
    settings: dict[str, Any]
    images: np.ndarray | None = None  # uint8 (N, H, W, 3): every sample's final picture
    texts: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)  # what the trajectory file keeps
    steps: tuple[int, int] | None = None  # (steps done, steps) when the steps were recorded
    problem: str = ""  # why the steps could not be read


def _nearest(image: QImage, size: int) -> QPixmap:
    """``image`` enlarged or reduced to fit ``size`` px with nearest-neighbour sampling."""
    factor = size / max(1, image.width(), image.height())
    if factor >= 1:
        factor = math.floor(factor)
    scaled = image.scaled(
        max(1, int(image.width() * factor)),
        max(1, int(image.height() * factor)),
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.FastTransformation,
    )
    return QPixmap.fromImage(scaled)


def _when(name: str) -> str:
    """'20261201-091521-823363-0002-generate' -> '12-01 09:15:21' (the name as is otherwise)."""
    parts = name.split("-")
    if len(parts) >= 2 and len(parts[0]) == 8 and len(parts[1]) == 6 and (parts[0] + parts[1]).isdigit():
        day, clock = parts[0], parts[1]
        return f"{day[4:6]}-{day[6:8]} {clock[:2]}:{clock[2:4]}:{clock[4:6]}"
    return name[:15]


class PixelView(QWidget):
    """One picture, as large as fits, enlarged by a whole factor (crisp pixels)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.picture: QImage | None = None
        self.setMinimumSize(160, 160)

    def set_picture(self, image: QImage | None) -> None:
        """Show ``image`` (None: nothing)."""
        self.picture = image
        self.update()

    def factor(self) -> float:
        """How many screen pixels one picture pixel takes."""
        if self.picture is None or self.picture.isNull():
            return 0.0
        fit = min(self.width() / self.picture.width(), self.height() / self.picture.height())
        return float(math.floor(fit)) if fit >= 1 else fit

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Draw the picture centred, nearest neighbour."""
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), self.palette().window())
            factor = self.factor()
            if factor <= 0:
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Select an output")
                return
            w, h = self.picture.width() * factor, self.picture.height() * factor
            x, y = (self.width() - w) / 2, (self.height() - h) / 2
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            painter.drawImage(QRect(int(x), int(y), int(w), int(h)), self.picture)
        finally:
            painter.end()


class GalleryPanel(QWidget):
    """Thumbnails of every sample of every saved output, with metadata and actions."""

    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.host = window  # the main window (see the module docstring for what is used)
        self._details: dict[str, Details] = {}
        self._undo: list[tuple[store.SavedOutput, list[tuple[Path, Path]], int | None]] = []
        self._dirty = True

        self.model_filter = QComboBox()
        self.model_filter.setToolTip("Show the outputs of one model only")
        self.model_filter.addItem(ALL_MODELS)
        self.model_filter.currentIndexChanged.connect(lambda _i: self._apply_filter())
        self.branch_step = QSpinBox(minimum=0, maximum=0)
        self.branch_step.setToolTip("Branch from the state after this many steps")
        self.branch_button = QPushButton("Branch")
        self.branch_button.setToolTip(
            "Continue the selected sample (or the whole output) from the step, new seed"
        )
        self.branch_button.clicked.connect(lambda: self.host.spawn(self.branch_selected()))
        self.export_button = QToolButton(text="Export")
        self.export_button.setToolTip("Export the selected sample (or the whole output)")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        menu.addAction("PNG (settings in text chunks)\u2026", lambda: self.export_selected("png"))
        menu.addAction("Animated GIF of the denoising\u2026", lambda: self.export_selected("gif"))
        menu.addAction("Animated WebP of the denoising\u2026", lambda: self.export_selected("webp"))
        menu.addAction("Text\u2026", lambda: self.export_selected("text"))
        self.export_button.setMenu(menu)
        self.scale = QSpinBox(minimum=0, maximum=64, value=0)
        self.scale.setSpecialValueText("auto")
        self.scale.setPrefix("\u00d7")
        self.scale.setToolTip("Export scale (whole pixels); auto = about 512 px on the longer side")
        self.fps = QDoubleSpinBox(minimum=1.0, maximum=60.0, value=12.0, singleStep=1.0, decimals=0)
        self.fps.setSuffix(" fps")
        self.fps.setToolTip("Frame rate of exported animations")
        # the scale and frame rate chosen here apply to every export (File menu, History dock too)
        session = getattr(window, "session", None)
        if session is not None:
            self.scale.valueChanged.connect(lambda v: setattr(session, "export_scale", int(v)))
            self.fps.valueChanged.connect(lambda v: setattr(session, "export_fps", float(v)))
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Move the selected output's files to the trash (Undo brings them back)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.undo_button = QPushButton("Undo delete")
        self.undo_button.setEnabled(False)
        self.undo_button.clicked.connect(self.undo_delete)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Model"))
        bar.addWidget(self.model_filter, 1)
        bar.addSpacing(12)
        bar.addWidget(QLabel("from step"))
        bar.addWidget(self.branch_step)
        bar.addWidget(self.branch_button)
        bar.addSpacing(12)
        bar.addWidget(self.scale)
        bar.addWidget(self.fps)
        bar.addWidget(self.export_button)
        bar.addSpacing(12)
        bar.addWidget(self.delete_button)
        bar.addWidget(self.undo_button)

        self.outputs = QListWidget()
        self.outputs.setViewMode(QListWidget.ViewMode.IconMode)
        self.outputs.setIconSize(QSize(THUMB, THUMB))
        self.outputs.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.outputs.setMovement(QListWidget.Movement.Static)
        self.outputs.setWordWrap(True)
        self.outputs.setGridSize(QSize(THUMB + 72, THUMB + 44))
        self.outputs.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.outputs.currentItemChanged.connect(lambda _a, _b: self._output_chosen())
        self.samples = QListWidget()
        self.samples.setViewMode(QListWidget.ViewMode.IconMode)
        self.samples.setIconSize(QSize(SAMPLE_THUMB, SAMPLE_THUMB))
        self.samples.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.samples.setMovement(QListWidget.Movement.Static)
        self.samples.setMaximumHeight(3 * SAMPLE_THUMB + 72)
        self.samples.currentRowChanged.connect(lambda _r: self._sample_chosen())
        self.full = PixelView()
        self.text = QPlainTextEdit(readOnly=True)
        self.views = QStackedWidget()
        self.views.addWidget(self.full)
        self.views.addWidget(self.text)
        self.meta = QTextBrowser()
        self.meta.setOpenLinks(False)

        middle = QWidget()
        ml = QVBoxLayout(middle)
        ml.setContentsMargins(0, 0, 0, 0)
        ml.addWidget(self.samples)
        ml.addWidget(self.views, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.outputs)
        split.addWidget(middle)
        split.addWidget(self.meta)
        split.setStretchFactor(1, 1)
        split.setSizes([260, 480, 260])
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(split, 1)
        undo = QShortcut(QKeySequence.StandardKey.Undo, self)
        undo.activated.connect(self.undo_delete)
        delete = QShortcut(QKeySequence.StandardKey.Delete, self.outputs)
        delete.activated.connect(self.delete_selected)
        history_panel = getattr(window, "history_panel", None)
        if history_panel is not None:
            history_panel.entry_added.connect(lambda _id: self._outputs_changed())
        self._update_actions()

    # ------------------------------------------------------------------ listing
    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Read the outputs folder again when the tab is shown after a change."""
        super().showEvent(event)
        if self._dirty:
            self.refresh()

    def _outputs_changed(self) -> None:
        self._dirty = True
        if self.isVisible():
            self.refresh()

    def refresh(self) -> int:
        """List every saved output again (keeps the selection); returns how many there are."""
        self._dirty = False
        current, sample = self.current_output(), self.current_sample()
        outputs = store.list_outputs(Path(self.host.outputs_dir))
        self.outputs.blockSignals(True)
        self.outputs.clear()
        models = set()
        for saved in outputs:
            settings = saved.settings()
            model = str(settings.get("model", "") or "?")
            models.add(model)
            label = f"{_when(saved.name)}\n{settings.get('kind', 'output')} \u00b7 {model}"
            item = QListWidgetItem(label)
            item.setData(NAME_ROLE, str(saved.main))
            item.setData(MODEL_ROLE, model)
            item.setToolTip(
                f"{saved.name}\n{model}\n{'steps recorded' if saved.has_steps else 'no recorded steps'}"
            )
            if saved.is_image:
                image = QImage(str(saved.main))
                if not image.isNull():
                    item.setIcon(QIcon(_nearest(image, THUMB)))
            self.outputs.addItem(item)
        self.outputs.blockSignals(False)
        chosen = self.model_filter.currentText()
        self.model_filter.blockSignals(True)
        self.model_filter.clear()
        self.model_filter.addItem(ALL_MODELS)
        for name in sorted(models):
            self.model_filter.addItem(name)
        self.model_filter.setCurrentIndex(max(0, self.model_filter.findText(chosen)))
        self.model_filter.blockSignals(False)
        self._apply_filter()
        if current is not None and self.select_output(current.main) and sample is not None:
            if sample < self.samples.count():
                self.samples.setCurrentRow(sample)
        self._update_actions()
        return len(outputs)

    def _apply_filter(self) -> None:
        model = self.model_filter.currentText()
        for i in range(self.outputs.count()):
            item = self.outputs.item(i)
            item.setHidden(model not in ("", ALL_MODELS) and item.data(MODEL_ROLE) != model)
        current = self.outputs.currentItem()
        if current is not None and current.isHidden():
            self.outputs.setCurrentItem(None)
            self._output_chosen()

    def visible_outputs(self) -> list[str]:
        """Names of the outputs the filter shows, in order."""
        return [
            store.SavedOutput(Path(self.outputs.item(i).data(NAME_ROLE))).name
            for i in range(self.outputs.count())
            if not self.outputs.item(i).isHidden()
        ]

    def select_output(self, main: str | Path) -> bool:
        """Select the output whose main file is ``main``; False when it is not listed (or hidden)."""
        for i in range(self.outputs.count()):
            item = self.outputs.item(i)
            if item.data(NAME_ROLE) == str(main) and not item.isHidden():
                self.outputs.setCurrentItem(item)
                return True
        return False

    def current_output(self) -> store.SavedOutput | None:
        """The selected output."""
        item = self.outputs.currentItem()
        return store.SavedOutput(Path(item.data(NAME_ROLE))) if item is not None else None

    def current_sample(self) -> int | None:
        """The selected sample (None: the whole output)."""
        row = self.samples.currentRow()
        return row if row >= 0 else None

    # ------------------------------------------------------------------ one output
    def details(self, saved: store.SavedOutput) -> Details:
        """Read an output's pictures, text and metadata (cached by name)."""
        cached = self._details.get(saved.name)
        if cached is not None:
            return cached
        out = Details(saved, saved.settings())
        if saved.has_steps:
            try:
                traj, record = eng.load_trajectory(saved.trajectory)
                model = record.get("model") if isinstance(record.get("model"), dict) else {}
                config = eng.ModelConfig.from_dict(model.get("config"))
                out.record, out.steps = record, (traj.steps_done, traj.steps)
                out.settings = dict(record.get("settings") or out.settings)
                state = traj.state_at(traj.steps_done)
                if config.modality == "image":
                    out.images = render.Renderer(config).image_arrays(state)
                else:
                    # a BPE model's vocabulary is in its model file; without it the text file is used
                    config = enginelink.with_vocabulary(
                        config, str(model.get("path") or ""), str(model.get("tokenizer_digest") or "")
                    )
                    if config.tokenizer != "bpe" or config.vocabulary is not None:
                        length = int(out.settings.get("length") or config.seq_length)
                        tokens = traj.tokens_at(traj.steps_done)
                        tokenizer = enginelink.tokenizer_of(config)
                        out.texts = [enginelink.tokens_to_text(t[:length], tokenizer) for t in tokens]
            except (ValueError, TypeError, OSError) as exc:
                out.problem = str(exc)
        if out.images is None and not out.texts:
            self._from_main_file(out)
        self._details[saved.name] = out
        return out

    @staticmethod
    def _from_main_file(out: Details) -> None:
        saved = out.saved
        try:
            if saved.is_image:
                with Image.open(saved.main) as image:
                    out.images = np.asarray(image.convert("RGB"))[None]
            else:
                text = saved.main.read_text(encoding="utf-8", errors="replace")
                out.texts = text.split("\n\n" + "-" * 40 + "\n\n")
        except OSError as exc:
            out.problem = out.problem or f"cannot read {saved.main.name}: {exc}"

    def _output_chosen(self) -> None:
        self.samples.blockSignals(True)
        self.samples.clear()
        self.samples.blockSignals(False)
        saved = self.current_output()
        if saved is None:
            self.full.set_picture(None)
            self.text.setPlainText("")
            self.meta.setHtml("")
            self._update_actions()
            return
        info = self.details(saved)
        self.samples.blockSignals(True)
        if info.images is not None:
            for i, picture in enumerate(info.images):
                item = QListWidgetItem(QIcon(_nearest(render.to_qimage(picture), SAMPLE_THUMB)), str(i + 1))
                item.setToolTip(f"sample {i + 1}")
                self.samples.addItem(item)
            self.views.setCurrentWidget(self.full)
        else:
            for i, text in enumerate(info.texts):
                snippet = " ".join(text.split())[:40]
                self.samples.addItem(QListWidgetItem(f"{i + 1}: {snippet}"))
            self.views.setCurrentWidget(self.text)
        self.samples.blockSignals(False)
        done = info.steps[0] if info.steps else 0
        self.branch_step.setMaximum(done)
        self.branch_step.setValue(done // 2)
        self.meta.setHtml(self.metadata_html(info))
        self._sample_chosen()

    def _sample_chosen(self) -> None:
        saved = self.current_output()
        if saved is None:
            return
        info = self.details(saved)
        sample = self.current_sample()
        if info.images is not None:
            pictures = info.images if sample is None else info.images[sample : sample + 1]
            self.full.set_picture(render.to_qimage(render.grid(pictures)))
        else:
            texts = info.texts if sample is None else info.texts[sample : sample + 1]
            self.text.setPlainText(store.join_texts(texts))
        self._update_actions()

    def metadata_html(self, info: Details) -> str:
        """The metadata panel of one output (every value escaped)."""
        s = info.settings
        rows: list[tuple[str, Any]] = [
            ("Output", info.saved.name),
            ("Kind", s.get("kind", "generate")),
            ("Model", s.get("model", "?")),
            ("Seed", s.get("seed")),
        ]
        if info.steps:
            done, total = info.steps
            rows.append(("Steps", f"{done} of {total}" if done < total else total))
        else:
            rows.append(("Steps", s.get("steps")))
        temperature = s.get("temperature")
        if s.get("temperature_end") is not None:
            temperature = f"{temperature} \u2192 {s.get('temperature_end')}"
        rows += [
            ("Samples", s.get("num_samples")),
            ("Temperature", temperature),
            ("Top-k", s.get("top_k") or "off"),
            ("Top-p", s.get("top_p") if s.get("top_p") not in (None, 1, 1.0) else "off"),
            ("Reveal", s.get("reveal")),
            ("Strategy", s.get("strategy") or "ancestral"),
            ("Threshold", s.get("threshold") if s.get("strategy") == "threshold" else None),
            ("Corrector", _corrector_text(s)),
            ("Time warp", s.get("time_warp")),
        ]
        nfe, idle = s.get("nfe") or [], s.get("idle_steps") or []
        if isinstance(nfe, list) and nfe:
            rows.append(("NFE", f"{sum(nfe) / len(nfe):.1f} mean ({', '.join(str(v) for v in nfe[:16])})"))
        if isinstance(idle, list) and idle:
            rows.append(
                ("Idle steps", f"{sum(idle) / len(idle):.1f} mean ({', '.join(str(v) for v in idle[:16])})")
            )
        if s.get("seconds") is not None:
            rows.append(("Time", f"{float(s['seconds']):.2f} s"))
        if s.get("parent_output") or s.get("parent") is not None:
            parent = s.get("parent_output") or f"#{s.get('parent')} (an earlier session)"
            where = f" at step {s.get('branch_step')}" if s.get("branch_step") is not None else ""
            which = f", sample {int(s['parent_sample']) + 1}" if s.get("parent_sample") is not None else ""
            rows.append(("Parent", f"{parent}{which}{where}"))
        if s.get("model_path"):
            rows.append(("Model file", s.get("model_path")))
        rows.append(("App version", s.get("app_version")))
        recorded = "every step" if info.steps else "none (saved before steps were recorded)"
        if info.problem:
            recorded = f"unreadable: {info.problem}"
        rows.append(("Recorded steps", recorded))
        body = "".join(
            f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows
            if v not in (None, "")
        )
        return f"<table cellspacing='3'>{body}</table>"

    def _update_actions(self) -> None:
        saved = self.current_output()
        has = saved is not None
        steps = has and self.details(saved).steps is not None
        self.branch_button.setEnabled(bool(steps))
        self.branch_step.setEnabled(bool(steps))
        self.export_button.setEnabled(has)
        self.delete_button.setEnabled(has)
        self.undo_button.setEnabled(bool(self._undo))

    # ------------------------------------------------------------------ actions
    def _entry(self, saved: store.SavedOutput) -> Any:
        """The history entry of an output: this session's, or the output reopened (not shown)."""
        entry = self.host.history.by_output(saved.name)
        return entry if entry is not None else self.host.session.open_output(saved.main, show=False)

    async def branch_selected(self, seed: int | None = None) -> Any:
        """Branch the selected sample (or the whole output) from the chosen step; new entry."""
        saved = self.current_output()
        if saved is None:
            raise ValueError("Select an output in the gallery first")
        step, sample = self.branch_step.value(), self.current_sample()
        entry = self._entry(saved)
        self.host.tabs.setCurrentIndex(0)  # watch it on the Generate tab
        return await self.host.session.branch(step, seed, parent=entry, sample=sample)

    def export_selected(self, kind: str, path: str | None = None) -> Path | None:
        """Export the selected sample (or the whole output); see ``Session.export_entry``."""
        saved = self.current_output()
        if saved is None:
            self.host.flash("Select an output in the gallery first")
            return None
        scale, fps, sample = self.scale.value() or None, self.fps.value(), self.current_sample()
        session = self.host.session
        if saved.has_steps:
            try:
                entry = self._entry(saved)
            except (ValueError, OSError) as exc:
                self.host.report_error(f"Cannot reopen {saved.name}", exc)
                return None
            return session.export_entry(entry.id, kind, path, sample=sample, scale=scale, fps=fps)
        return self._export_without_steps(saved, kind, path, sample, scale)

    def _export_without_steps(
        self, saved: store.SavedOutput, kind: str, path: str | None, sample: int | None, scale: int | None
    ) -> Path | None:
        info = self.details(saved)
        if kind in ("gif", "webp") and saved.is_image:
            self.host.flash(f"{saved.name} has no recorded steps: only its picture can be exported", 8000)
            return None
        ext = "png" if saved.is_image and kind != "text" else "txt"
        if path is None:
            default = str(Path.home() / f"prime-{saved.name}.{ext}")
            path, _ = QFileDialog.getSaveFileName(self, f"Export {ext.upper()}", default)
            if not path:
                return None
        out = Path(path)
        try:
            if ext == "png" and info.images is not None:
                grid = render.grid(info.images)
                factor = scale or max(1, math.ceil(512 / max(grid.shape[:2])))
                store.save_png(out, grid, dict(info.settings, scale=factor), scale=factor)
            else:
                texts = info.texts if sample is None else info.texts[sample : sample + 1]
                store.save_text(out, texts, info.settings)
        except (OSError, ValueError) as exc:
            self.host.report_error(f"Could not export {out.name}", exc)
            return None
        self.host.flash(f"Exported {out}")
        return out

    def delete_selected(self) -> bool:
        """Move the selected output's files to the trash; Undo puts them back."""
        saved = self.current_output()
        if saved is None:
            return False
        try:
            moves = store.trash(saved)
        except OSError as exc:
            self.host.report_error(f"Could not delete {saved.name}", exc)
            return False
        entry = self.host.history.by_output(saved.name)
        entry_id = entry.id if entry is not None else None
        self._undo.append((saved, moves, entry_id))
        self._details.pop(saved.name, None)
        self.host.history_panel.mark_deleted(saved.main, entry_id, True)
        self.refresh()
        self.host.flash(f"Deleted {saved.name} (Undo delete or Ctrl+Z brings it back)", 8000)
        return True

    def undo_delete(self) -> bool:
        """Put the last deleted output back."""
        if not self._undo:
            return False
        saved, moves, entry_id = self._undo.pop()
        try:
            store.restore(moves)
        except OSError as exc:
            self.host.report_error(f"Could not restore {saved.name}", exc)
            return False
        self.host.history_panel.mark_deleted(saved.main, entry_id, False)
        self.refresh()
        self.select_output(saved.main)
        self.host.flash(f"Restored {saved.name}")
        return True


panels.register_panel("Gallery", GalleryPanel, order=20)


def _corrector_text(settings: dict) -> Any:
    """The corrector row: off, the share, or the share and the time it starts from ("0.2 from t ≤ 0.5")."""
    share, start = settings.get("corrector"), settings.get("corrector_start")
    if not share:
        return "off"
    if isinstance(start, (int, float)) and start < 1:
        return f"{share} from t ≤ {start:g}"
    return share
