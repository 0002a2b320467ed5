"""The training panel's settings: which model (fine-tune or new), which data, how to train.

Pure widgets: they hold values and say when they changed; :mod:`studio.train.panel` acts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.enginelink import eng
from studio.train.runs import FINETUNE_DEFAULTS, PRESETS

log = logging.getLogger(__name__)

TOKENIZERS = (
    ("bytes", "Bytes (256 tokens, every file round-trips)"),
    ("bpe", "Learned BPE vocabulary"),
)
DEFAULT_VOCAB = 4096
MIN_VOCAB, MAX_VOCAB = 257, 65536  # the 256 bytes plus at least one merge .. 16-bit ids

OBJECTIVES = (
    ("masked_ce", "masked cross-entropy (default)"),
    ("valid_bound", "valid bound (a likelihood bound)"),
    ("surrogate", "paper's objective \u2014 surrogate (not a likelihood)"),
)


def _spin(lo: int, hi: int, value: int, step: int = 1, suffix: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    s.setSingleStep(step)
    s.setSuffix(suffix)
    return s


def _dspin(lo: float, hi: float, value: float, decimals: int, step: float) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setDecimals(decimals)
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setValue(value)
    return s


def _combo() -> QComboBox:
    """A combo box that can shrink below its longest item (the form lives in a narrow column)."""
    c = QComboBox()
    c.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    c.setMinimumContentsLength(10)
    return c


def tokens_words(config: Any) -> str:
    """A BPE text config's tokens in words: 'learned BPE vocabulary of 4,096 entries'."""
    return f"learned BPE vocabulary of {config.num_classes:,} entries"


def _note(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setObjectName("hint")
    return label


class TrainingForm(QWidget):
    """Model, data and run settings in three group boxes, plus the run buttons."""

    model_changed = Signal()  # geometry, preset or mode: the data must be checked again
    data_options_changed = Signal()
    speed_requested = Signal()
    browse_folder = Signal()
    browse_file = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.selected: tuple[str, str, Any] | None = None  # (name, path, ModelConfig)
        self._new_geometry: dict[str, Any] | None = None  # the New model's rows while fine-tuning
        self._typed: set[str] = set()  # run settings the user changed: mode switches keep them
        self._defaulting = False
        # BPE vocabularies learned for (data, size, options) keys (see vocabulary_key): the data
        # check learns one on the engine thread, model_config() then builds the model with it
        self._learned: dict[str, Any] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._model_box())
        layout.addWidget(self._data_box())
        layout.addWidget(self._run_box())
        layout.addStretch(1)
        self.model_changed.connect(self._sync_data_rows)
        self.apply_preset("small")
        self._sync_modality()

    # ------------------------------------------------------------------ model
    def _model_box(self) -> QGroupBox:
        box = QGroupBox("1 \u00b7 Model")
        self.finetune = QRadioButton("Fine-tune the selected model")
        self.new = QRadioButton("New model")
        self.mode = QButtonGroup(self)
        self.mode.addButton(self.finetune)
        self.mode.addButton(self.new)
        self.new.setChecked(True)
        self.selected_label = _note("Select a model in the Models list to fine-tune it.")
        self.preset = _combo()
        for name, p in PRESETS.items():
            self.preset.addItem(f"{name} \u00b7 {p.n_layers}\u00d7{p.d_model}", name)
        self.modality = _combo()
        self.modality.addItem("image", "image")
        self.modality.addItem("text", "text")
        self.height_ = _spin(2, 256, 16)
        self.width_ = _spin(2, 256, 16)
        self.channels = _combo()
        self.channels.addItem("grey (1)", 1)
        self.channels.addItem("RGB (3)", 3)
        self.levels = _spin(2, 256, 256)
        self.seq_len = _spin(8, 4096, 128, 8, " bytes")
        self.tokenizer = _combo()
        for key, label in TOKENIZERS:
            self.tokenizer.addItem(label, key)
        self.tokenizer.setToolTip(
            "What a text token is: one byte (C = 256), or an entry of a byte-level BPE vocabulary\n"
            "learned from the training split of the data when it is checked (C = its size; still\n"
            "lossless for any bytes). Fine-tuning keeps the parent model's tokens."
        )
        self.vocab_size = _spin(MIN_VOCAB, MAX_VOCAB, DEFAULT_VOCAB, 256, " entries")
        self.vocab_size.setToolTip(
            "How many vocabulary entries to learn (257..65,536); small data may support fewer"
        )
        self.vocab_note = _note("")
        self.ell = _spin(1, 8, 2)
        self.ell.setToolTip("\u2113: sub-tokens (digits) per token; 1 is the plain masked-diffusion baseline")
        self.measure = QPushButton("Measure speed")
        self.measure.setToolTip("Time a few training steps of each size on this machine (engine thread)")
        self.speed = _note("time per step: not measured yet")
        self.estimate = _note("")
        self.size_box = QWidget()
        size_row = QHBoxLayout(self.size_box)
        size_row.setContentsMargins(0, 0, 0, 0)
        size_row.addWidget(self.height_)
        size_row.addWidget(QLabel("\u00d7"))
        size_row.addWidget(self.width_)
        form = QFormLayout()
        form.addRow(self.finetune)
        form.addRow(self.selected_label)
        form.addRow(self.new)
        form.addRow("Size", self.preset)
        form.addRow("Modality", self.modality)
        self._image_rows = [QLabel("Image"), QLabel("Channels"), QLabel("Levels")]
        form.addRow(self._image_rows[0], self.size_box)
        form.addRow(self._image_rows[1], self.channels)
        form.addRow(self._image_rows[2], self.levels)
        self._text_rows = [QLabel("Length"), QLabel("Tokens"), QLabel("Vocabulary")]
        form.addRow(self._text_rows[0], self.seq_len)
        form.addRow(self._text_rows[1], self.tokenizer)
        form.addRow(self._text_rows[2], self.vocab_size)
        form.addRow(self.vocab_note)
        form.addRow("\u2113 (digits)", self.ell)
        form.addRow(self.measure, self.speed)
        form.addRow(self.estimate)
        box.setLayout(form)
        self.mode.buttonToggled.connect(lambda *_: self._sync_mode())
        self.preset.currentIndexChanged.connect(lambda _i: self._preset_chosen())
        self.modality.currentIndexChanged.connect(lambda _i: self._sync_modality())
        for w in (self.height_, self.width_, self.levels, self.seq_len, self.ell, self.vocab_size):
            w.valueChanged.connect(lambda _v: self.model_changed.emit())
        self.tokenizer.currentIndexChanged.connect(lambda _i: self._sync_modality())
        self.vocab_size.valueChanged.connect(lambda _v: self._sync_vocab_note())
        self.channels.currentIndexChanged.connect(lambda _i: self.model_changed.emit())
        self.measure.clicked.connect(self.speed_requested)
        return box

    def modality_now(self) -> str:
        """The modality trained: the selected model's when fine-tuning."""
        if self.finetune.isChecked() and self.selected is not None:
            return self.selected[2].modality
        return self.modality.currentData()

    def _sync_data_rows(self) -> None:
        if not hasattr(self, "text_mode"):
            return  # built later in __init__
        image = self.modality_now() == "image"
        for w in (self.fit_label, self.fit, self.background_label, self.background_row):
            w.setVisible(image)
        for w in (self.text_mode_label, self.text_mode, self.column_label, self.column):
            w.setVisible(not image)
        self.background_colour.setEnabled(self.background.currentData() == "colour")
        self._sync_augment(image)

    def augment_possible(self) -> bool:
        """Shift augmentation needs an image model that is told the shift: any new one, or such a parent."""
        if self.modality_now() != "image":
            return False
        return not self.is_finetune() or self.selected is None or bool(self.selected[2].augment_shift)

    def _sync_augment(self, image: bool) -> None:
        for w in (self.augment_label, self.augment):
            w.setVisible(image)
        possible = self.augment_possible()
        self.augment.setEnabled(possible)
        self.augment.setToolTip(
            "Chance that a training image is shifted by one pixel (edges repeated). A new model is "
            "told each image's shift, so its samples stay centred."
            if possible
            else "The selected model was not built to be told a shift: fine-tuning it cannot augment. "
            "Train a new model to use shift augmentation."
        )

    def _sync_modality(self) -> None:
        image = self.modality.currentData() == "image"
        for w in (*self._image_rows, self.size_box, self.channels, self.levels):
            w.setVisible(image)
        for w in (*self._text_rows, self.seq_len, self.tokenizer, self.vocab_note):
            w.setVisible(not image)
        bpe = self.tokenizer.currentData() == "bpe"
        for w in (self._text_rows[2], self.vocab_size):
            w.setVisible(not image and bpe)
        self.seq_len.setSuffix(" tokens" if bpe else " bytes")
        self._sync_vocab_note()
        self.model_changed.emit()

    def _sync_vocab_note(self) -> None:
        """Say where the vocabulary comes from: the parent's, learned already, or at the data check."""
        if not hasattr(self, "data_path"):
            return  # built later in __init__
        note = ""
        if self.is_finetune() and self.selected is not None:
            cfg = self.selected[2]
            if cfg.modality == "text":
                note = (
                    f"the parent's tokens: {tokens_words(cfg)} (fine-tuning keeps them)"
                    if cfg.tokenizer == "bpe"
                    else "the parent's tokens: bytes (fine-tuning keeps them)"
                )
        elif self.modality.currentData() == "text" and self.tokenizer.currentData() == "bpe":
            learned = self.learned_vocabulary()
            if learned is None:
                note = "learned from the training split of the data when it is checked"
            else:
                tok = learned.tokenizer
                note = f"learned from this data: {tok.vocab_size:,} entries"
                bpt = getattr(tok, "trained_bytes_per_token", None)
                if bpt:
                    note += f", {bpt:.2f} bytes per token"
                if learned.note:
                    note += f" ({learned.note})"
        self.vocab_note.setText(note)
        self.vocab_note.setVisible(bool(note))

    def vocabulary_key(self) -> str | None:
        """What a learned vocabulary depends on (data, size, data options); None: none is needed."""
        bpe = self.modality.currentData() == "text" and self.tokenizer.currentData() == "bpe"
        if self.is_finetune() or not bpe:
            return None
        path = self.data_path.text().strip()
        if not path:
            return None
        try:
            options = self.train_config().data_options().to_dict()
        except ValueError:
            return None
        return json.dumps([path, self.vocab_size.value(), options], sort_keys=True)

    def learned_vocabulary(self) -> Any:
        """The vocabulary learned for the current settings (a LearnedVocabulary), or None."""
        key = self.vocabulary_key()
        return self._learned.get(key) if key is not None else None

    def needs_vocabulary(self) -> bool:
        """True when the model needs a vocabulary not learned yet (the data check learns it)."""
        return self.vocabulary_key() is not None and self.learned_vocabulary() is None

    def set_learned_vocabulary(self, key: str, learned: Any) -> None:
        """Keep a vocabulary learned for ``key`` (from :meth:`vocabulary_key`); model_config uses it."""
        if len(self._learned) >= 4:  # a few kept: switching back to an earlier choice is free
            self._learned.pop(next(iter(self._learned)))
        self._learned[key] = learned
        self._sync_vocab_note()

    def _sync_mode(self) -> None:
        """Fine-tune / New: the geometry rows show the model trained; typed run settings stay."""
        new = self.new.isChecked()
        for w in (
            self.preset,
            self.modality,
            self.height_,
            self.width_,
            self.channels,
            self.levels,
            self.seq_len,
            self.tokenizer,
            self.vocab_size,
            self.ell,
        ):
            w.setEnabled(new)
        if not new:
            if self._new_geometry is None:
                self._new_geometry = {key: self.values()[key] for key in self.MODEL_KEYS}
            self._show_parent_geometry()
            self._set_run_defaults(**FINETUNE_DEFAULTS)
        else:
            if self._new_geometry is not None:
                geometry, self._new_geometry = self._new_geometry, None
                self.set_values({k: v for k, v in geometry.items() if k != "preset"})
            self.apply_preset(self.preset.currentData())
        self._sync_vocab_note()
        self.model_changed.emit()

    def _show_parent_geometry(self) -> None:
        """While fine-tuning, the (disabled) geometry rows show the selected model's."""
        if self.selected is None or not self.finetune.isChecked():
            return
        cfg = self.selected[2]
        shown = {"modality": cfg.modality, "ell": cfg.ell}
        if cfg.modality == "image":
            shown.update(height_=cfg.height, width_=cfg.width, channels=cfg.channels, levels=cfg.num_classes)
        else:
            shown.update(seq_len=cfg.seq_len, tokenizer=cfg.tokenizer or "bytes")
            if cfg.tokenizer == "bpe":
                shown.update(vocab_size=cfg.num_classes)
        for key, value in shown.items():
            try:
                self.set_values({key: value})
            except (TypeError, ValueError):  # e.g. a geometry outside the New model's ranges
                continue

    def set_selected(self, name: str | None, path: str | None, config: Any) -> None:
        """The model selected in the library (None: nothing usable selected)."""
        self.selected = (name, path, config) if name and path and config is not None else None
        if self.selected is None:
            self.selected_label.setText("Select a trained model in the Models list to fine-tune it.")
        else:
            geo = (
                f"{config.height}\u00d7{config.width}\u00d7{config.channels}, {config.num_classes} levels"
                if config.modality == "image"
                else f"{config.seq_len} tokens, {tokens_words(config)}"
                if config.tokenizer == "bpe"
                else f"{config.seq_len} bytes"
            )
            self.selected_label.setText(f"<b>{name}</b>: {config.modality} {geo}, \u2113={config.ell}")
        if self.finetune.isChecked():
            self._show_parent_geometry()
            self.model_changed.emit()
        self._sync_vocab_note()

    def is_finetune(self) -> bool:
        """True when fine-tuning (the selected model, if one is selected)."""
        return self.finetune.isChecked()

    def model_config(self) -> Any:
        """The ModelConfig to train (the selected model's when fine-tuning); ValueError if invalid."""
        if self.is_finetune():
            if self.selected is None:
                raise ValueError("select a model in the Models list to fine-tune it, or choose New model")
            return self.selected[2]
        p = PRESETS[self.preset.currentData()]
        common = dict(ell=self.ell.value(), d_model=p.d_model, n_layers=p.n_layers, n_heads=p.n_heads)
        if self.modality.currentData() == "text":
            if self.tokenizer.currentData() == "bpe":
                learned = self.learned_vocabulary()
                if learned is None:  # until the data check learns it: the size asked for, no vocabulary
                    return eng.ModelConfig(
                        modality="text",
                        num_classes=self.vocab_size.value(),
                        seq_len=self.seq_len.value(),
                        tokenizer="bpe",
                        **common,
                    )
                vocab = learned.tokenizer
                return eng.ModelConfig(
                    modality="text",
                    num_classes=vocab.vocab_size,
                    seq_len=self.seq_len.value(),
                    tokenizer="bpe",
                    vocabulary=vocab,
                    **common,
                )
            return eng.ModelConfig(
                modality="text", num_classes=256, seq_len=self.seq_len.value(), tokenizer="bytes", **common
            )
        return eng.ModelConfig(
            modality="image",
            num_classes=self.levels.value(),
            height=self.height_.value(),
            width=self.width_.value(),
            channels=self.channels.currentData(),
            augment_shift=1 if self.augment.value() > 0 else 0,
            **common,
        )

    def model_source(self) -> dict[str, Any]:
        """The run record's model entry."""
        if self.is_finetune():
            name, path, _cfg = self.selected
            return {"kind": "finetune", "path": path, "name": name}
        cfg = self.model_config()
        out: dict[str, Any] = {"kind": "new", "config": cfg.to_dict()}
        if cfg.vocabulary is not None:  # the vocabulary itself goes in a file beside the run record
            out["vocabulary_digest"] = cfg.vocabulary.digest
            out["vocabulary_requested"] = self.vocab_size.value()
            bpt = getattr(cfg.vocabulary, "trained_bytes_per_token", None)
            if bpt:
                out["vocabulary_bytes_per_token"] = float(bpt)
        return out

    def _preset_chosen(self) -> None:
        self._typed.clear()  # a size chosen brings its run defaults
        self.apply_preset(self.preset.currentData())

    def apply_preset(self, name: str) -> None:
        """Select a size preset and its training defaults."""
        i = self.preset.findData(name)
        if i >= 0 and self.preset.currentIndex() != i:
            self.preset.setCurrentIndex(i)  # re-enters through the signal
            return
        p = PRESETS[name]
        if not self.is_finetune():
            self._set_run_defaults(p.steps, p.batch_size, p.lr, p.ema, p.every)
        self.model_changed.emit()

    # ------------------------------------------------------------------ data
    def _data_box(self) -> QGroupBox:
        box = QGroupBox("2 \u00b7 Data")
        self.data_path = QLineEdit()
        self.data_path.setPlaceholderText(
            "a folder or file of images, arrays (.npy/.npz/MNIST IDX) or text \u2014 or drop it here"
        )
        self.pick_folder = QPushButton("Folder\u2026")
        self.pick_file = QPushButton("File\u2026")
        self.fit = _combo()
        self.fit.addItem("resize and centre-crop", "crop")
        self.fit.addItem("resize and pad (background borders)", "pad")
        self.background = _combo()
        self.background.addItem("white", "white")
        self.background.addItem("black", "black")
        self.background.addItem("a colour:", "colour")
        self.background.setToolTip(
            "What transparent pixels (and padding) become. White suits icon sets: most are dark "
            "glyphs on transparency, which turn into flat black squares on black."
        )
        self.background_colour = QLineEdit("#808080")
        self.background_colour.setPlaceholderText("#rrggbb")
        self.background_colour.setMaximumWidth(90)
        self.background_row = QWidget()
        bg_row = QHBoxLayout(self.background_row)
        bg_row.setContentsMargins(0, 0, 0, 0)
        bg_row.addWidget(self.background, 1)
        bg_row.addWidget(self.background_colour)
        self.include = QLineEdit()
        self.include.setPlaceholderText("all files (or e.g. *.png, icons/*)")
        self.include.setToolTip(
            "Use only files whose path or name matches one of these glob patterns (comma-separated)"
        )
        self.exclude = QLineEdit()
        self.exclude.setPlaceholderText("nothing (or e.g. *-rtl*, drafts/*)")
        self.exclude.setToolTip(
            "Leave out files whose path or name matches one of these glob patterns (comma-separated)"
        )
        self.column = QLineEdit()
        self.column.setPlaceholderText("CSV/JSONL: none (files are plain text)")
        self.column.setToolTip(
            "With a name, every CSV/TSV row or JSONL record gives one document: that column's text"
        )
        self.drop_flat = QCheckBox("Drop flat items (one colour, or blank text)")
        self.drop_flat.setToolTip("Leave out items that are one flat colour or blank after preprocessing")
        self.text_mode = _combo()
        self.text_mode.addItem("one document per sequence (tail padded)", "pad")
        self.text_mode.addItem("documents packed back to back", "pack")
        self.report_summary = _note("No data chosen yet.")
        self.drop_flat_now = QPushButton("Drop the flat items")
        self.drop_flat_now.setToolTip("Tick \u201cDrop flat items\u201d and check the data again")
        self.drop_flat_now.hide()
        self.skipped = QListWidget()
        self.skipped.setMaximumHeight(110)
        self.skipped.setToolTip("Files that will not be used, each with its reason")
        self.stats = _note("")
        row = QHBoxLayout()
        row.addWidget(self.pick_folder)
        row.addWidget(self.pick_file)
        row.addStretch(1)
        form = QFormLayout()
        form.addRow(self.data_path)
        form.addRow(row)
        self.fit_label, self.text_mode_label = QLabel("Image fit"), QLabel("Text")
        self.background_label, self.column_label = QLabel("Background"), QLabel("Column")
        form.addRow(self.fit_label, self.fit)
        form.addRow(self.background_label, self.background_row)
        form.addRow(self.text_mode_label, self.text_mode)
        form.addRow(self.column_label, self.column)
        form.addRow("Include", self.include)
        form.addRow("Exclude", self.exclude)
        form.addRow(self.drop_flat)
        form.addRow(self.report_summary)
        form.addRow(self.drop_flat_now)
        form.addRow(QLabel("Skipped files:"))
        form.addRow(self.skipped)
        form.addRow(self.stats)
        box.setLayout(form)
        self.data_path.textChanged.connect(lambda _t: self._sync_vocab_note())
        self.pick_folder.clicked.connect(self.browse_folder)
        self.pick_file.clicked.connect(self.browse_file)
        self.fit.currentIndexChanged.connect(lambda _i: self.data_options_changed.emit())
        self.text_mode.currentIndexChanged.connect(lambda _i: self.data_options_changed.emit())
        self.background.currentIndexChanged.connect(lambda _i: self._sync_data_rows())
        self.background.currentIndexChanged.connect(lambda _i: self.data_options_changed.emit())
        for edit in (self.background_colour, self.include, self.exclude, self.column):
            edit.editingFinished.connect(self.data_options_changed.emit)
        self.drop_flat.toggled.connect(lambda _b: self.data_options_changed.emit())
        self.drop_flat_now.clicked.connect(lambda: self.drop_flat.setChecked(True))
        return box

    def background_value(self) -> str:
        """The background option: white, black or the colour typed (#rrggbb)."""
        choice = self.background.currentData()
        return self.background_colour.text().strip() if choice == "colour" else choice

    @staticmethod
    def patterns(edit: QLineEdit) -> tuple[str, ...]:
        """Comma-separated glob patterns of a line edit."""
        return tuple(p.strip() for p in edit.text().split(",") if p.strip())

    # ------------------------------------------------------------------ run
    def _run_box(self) -> QGroupBox:
        box = QGroupBox("3 \u00b7 Run")
        self.name = QLineEdit("my-model")
        self.name.setToolTip("Library name of the trained model")
        self.steps = _spin(1, 10_000_000, 2000, 100)
        self.batch = _spin(1, 4096, 32)
        self.lr = _dspin(1e-6, 1.0, 1e-3, 6, 1e-4)
        self.ema = _dspin(0.0, 0.9999, 0.999, 4, 0.001)
        self.ema.setToolTip("Decay of the weight average that is evaluated and saved (0 = off)")
        self.objective = _combo()
        for key, label in OBJECTIVES:
            self.objective.addItem(label, key)
        self.objective.setToolTip(
            "What the optimiser minimises. Validation always reports the valid bound (bits per dimension)."
        )
        self.weight_decay = _dspin(0.0, 1.0, 0.0, 3, 0.01)
        self.weight_decay.setToolTip(
            "AdamW weight decay on the weight matrices (not embeddings, norms or biases); 0 = off"
        )
        self.augment = _dspin(0.0, 1.0, 0.0, 2, 0.05)
        self.augment.setSpecialValueText("off")
        self.augment_label = QLabel("Shift augmentation")
        self.checkpoint_every = _spin(0, 1_000_000, 250, 50, " steps")
        self.preview_every = _spin(0, 1_000_000, 250, 50, " steps")
        self.eval_every = _spin(0, 1_000_000, 250, 50, " steps")
        for s in (self.checkpoint_every, self.preview_every, self.eval_every):
            s.setSpecialValueText("never")
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Steps", self.steps)
        form.addRow("Batch size", self.batch)
        form.addRow("Learning rate", self.lr)
        form.addRow("EMA", self.ema)
        form.addRow("Objective", self.objective)
        form.addRow("Weight decay", self.weight_decay)
        form.addRow(self.augment_label, self.augment)
        form.addRow("Checkpoint every", self.checkpoint_every)
        form.addRow("Samples every", self.preview_every)
        form.addRow("Validate every", self.eval_every)
        box.setLayout(form)
        self.steps.valueChanged.connect(lambda _v: self.model_changed.emit())
        self.batch.valueChanged.connect(lambda _v: self.model_changed.emit())
        self.augment.valueChanged.connect(lambda _v: self.model_changed.emit())  # a new model's inputs
        for key in self.RUN_DEFAULT_KEYS:
            getattr(self, key).valueChanged.connect(lambda _v, k=key: self._run_value_typed(k))
        return box

    RUN_DEFAULT_KEYS = ("steps", "batch", "lr", "ema", "checkpoint_every", "preview_every", "eval_every")

    def _set_run_defaults(self, steps: int, batch_size: int, lr: float, ema: float, every: int) -> None:
        """The preset's or fine-tuning's run defaults, except for values the user typed."""
        values = (steps, batch_size, lr, ema, every, every, every)
        defaults = dict(zip(self.RUN_DEFAULT_KEYS, values, strict=True))
        self._defaulting = True
        try:
            for key, value in defaults.items():
                if key not in self._typed:
                    getattr(self, key).setValue(value)
        finally:
            self._defaulting = False

    def _run_value_typed(self, key: str) -> None:
        if not self._defaulting:
            self._typed.add(key)

    def train_config(self) -> Any:
        """The TrainConfig of these settings (ValueError names a bad value)."""
        steps = self.steps.value()
        return eng.TrainConfig(
            steps=steps,
            batch_size=self.batch.value(),
            lr=self.lr.value(),
            warmup=min(100, max(0, steps // 10)),
            ema=self.ema.value(),
            objective=self.objective.currentData(),
            weight_decay=self.weight_decay.value(),
            augment_p=self.augment.value() if self.augment_possible() else 0.0,
            checkpoint_every=self.checkpoint_every.value(),
            preview_every=self.preview_every.value(),
            eval_every=self.eval_every.value(),
            eval_batches=4,
            fit=self.fit.currentData(),
            text_mode=self.text_mode.currentData(),
            background=self.background_value(),
            include=self.patterns(self.include),
            exclude=self.patterns(self.exclude),
            column=self.column.text().strip(),
            drop_flat=self.drop_flat.isChecked(),
        )

    def set_values(self, values: dict[str, Any]) -> None:
        """Set run settings by name (tests and the self-test): steps, batch, lr, ema, ... name."""
        for key, value in values.items():
            widget = getattr(self, key)
            if isinstance(widget, QLineEdit):
                widget.setText(str(value))
            elif isinstance(widget, QCheckBox):
                if not isinstance(value, bool):
                    raise ValueError(f"{key}: expected true or false, got {value!r}")
                widget.setChecked(value)
            elif isinstance(widget, QComboBox):
                i = widget.findData(value)
                if i < 0:
                    raise ValueError(f"{key}: no choice {value!r}")
                widget.setCurrentIndex(i)
            else:
                widget.setValue(value)

    MODEL_KEYS = (
        "preset", "modality", "height_", "width_", "channels", "levels", "seq_len", "tokenizer", "vocab_size",
        "ell",
    )  # fmt: skip
    RUN_KEYS = (
        "data_path", "fit", "text_mode", "background", "background_colour", "include", "exclude",
        "column", "drop_flat", "name", "steps", "batch", "lr", "ema", "objective",
        "weight_decay", "augment", "checkpoint_every", "preview_every", "eval_every",
    )  # fmt: skip

    def values(self) -> dict[str, Any]:
        """Every setting by name (saved in the studio's settings, restored by :meth:`restore`)."""
        out: dict[str, Any] = {"mode": "finetune" if self.finetune.isChecked() else "new"}
        for key in self.MODEL_KEYS + self.RUN_KEYS:
            widget = getattr(self, key)
            if isinstance(widget, QLineEdit):
                out[key] = widget.text()
            elif isinstance(widget, QCheckBox):
                out[key] = widget.isChecked()
            elif isinstance(widget, QComboBox):
                out[key] = widget.currentData()
            else:
                out[key] = widget.value()
        if self._new_geometry is not None:  # fine-tuning: the rows show the parent's, keep the New one's
            out.update(self._new_geometry)
        return out

    def restore(self, values: dict[str, Any]) -> None:
        """Apply saved :meth:`values` (the preset first: it brings run defaults); bad entries are skipped."""
        self.new.setChecked(True)  # the New model's rows take the saved geometry first
        for keys in (self.MODEL_KEYS, self.RUN_KEYS):
            if keys is self.RUN_KEYS and values.get("mode") == "finetune":
                self.finetune.setChecked(True)  # shows the selected model's geometry from here on
            for key in keys:
                if key in values:
                    try:
                        self.set_values({key: values[key]})
                    except (TypeError, ValueError):
                        continue

    def show_record(self, record: Any) -> None:
        """Show a run's own settings (resuming a run made earlier): its model, data and run values."""
        model = record.model
        if model.get("kind") == "finetune":
            try:
                parent = record.model_config()
            except (OSError, ValueError) as exc:  # the parent file is gone: the rows stay as they are
                log.warning("cannot read the parent model of run %s: %s", record.id, exc)
            else:
                self.set_selected(model.get("name") or Path(model["path"]).stem, model["path"], parent)
            self.finetune.setChecked(True)
        else:
            cfg = eng.ModelConfig.from_dict(model["config"])
            self.new.setChecked(True)
            for name, p in PRESETS.items():
                if (p.d_model, p.n_layers, p.n_heads) == (cfg.d_model, cfg.n_layers, cfg.n_heads):
                    self.set_values({"preset": name})
                    break
            geometry = {"modality": cfg.modality, "ell": cfg.ell}
            if cfg.modality == "image":
                geometry.update(height_=cfg.height, width_=cfg.width, channels=cfg.channels)
                geometry.update(levels=cfg.num_classes)
            else:
                geometry.update(seq_len=cfg.seq_len, tokenizer=cfg.tokenizer or "bytes")
                if cfg.tokenizer == "bpe":  # the size asked for (the data may have supported fewer)
                    geometry.update(vocab_size=model.get("vocabulary_requested") or cfg.num_classes)
            self.restore_some(geometry)
        tc = record.train_config
        run = {
            "name": record.name,
            "data_path": record.data,
            "steps": tc.get("steps"),
            "batch": tc.get("batch_size"),
            "lr": tc.get("lr"),
            "ema": tc.get("ema"),
            "objective": tc.get("objective"),
            "weight_decay": tc.get("weight_decay"),
            "augment": tc.get("augment_p"),
            "checkpoint_every": tc.get("checkpoint_every"),
            "preview_every": tc.get("preview_every"),
            "eval_every": tc.get("eval_every"),
            "fit": tc.get("fit"),
            "text_mode": tc.get("text_mode"),
            "include": ", ".join(tc.get("include") or ()),
            "exclude": ", ".join(tc.get("exclude") or ()),
            "column": tc.get("column") or "",
            "drop_flat": tc.get("drop_flat"),
        }
        self.restore_some({k: v for k, v in run.items() if v is not None})

    def restore_some(self, values: dict[str, Any]) -> None:
        """:meth:`set_values`, skipping entries these widgets cannot show."""
        for key, value in values.items():
            try:
                self.set_values({key: value})
            except (TypeError, ValueError, OverflowError):
                continue

    def lock(self, locked: bool) -> None:
        """Freeze the settings while a run is active."""
        for box in self.findChildren(QGroupBox):
            box.setEnabled(not locked)
