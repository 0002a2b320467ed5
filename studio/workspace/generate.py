"""The generation panel.

Samples, steps, seed (random or fixed, always recorded), temperature,
top-p/top-k, reveal mode, reveal strategy (and its threshold), corrector; for text also prefix,
suffix and length; Generate / Cancel and a progress bar.
"""

from __future__ import annotations

import random
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.enginelink import eng

DEFAULTS: dict[str, Any] = {
    "num_samples": 4,
    "steps": 64,
    "seed": 0,
    "seed_mode": "random",
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "reveal": "joint",
    "strategy": eng.DEFAULT_STRATEGY,
    "threshold": 0.9,
    "corrector": 0.0,
    "prefix": "",
    "suffix": "",
    "length": 0,
}
REQUEST_KEYS = (
    "num_samples",
    "steps",
    "seed",
    "temperature",
    "top_k",
    "top_p",
    "reveal",
    "strategy",
    "threshold",
    "corrector",
)
STRATEGY_LABELS = {  # name -> (label, tooltip)
    "ancestral": (
        "Ancestral",
        "The model's own sampler: each masked digit revealed with the schedule's odds",
    ),
    "confidence": ("Confidence", "The most confident digits first (LLaDA's low-confidence remasking)"),
    "margin": ("Margin", "The digits with the largest top-1 minus top-2 probability first"),
    "entropy": ("Entropy", "The digits with the lowest entropy first"),
    "threshold": ("Threshold", "Every digit whose confidence reaches the threshold (one at least per step)"),
}


class GeneratePanel(QWidget):
    """Settings form with Generate / Cancel; ``values()`` / ``set_values()`` round-trip a dict."""

    generate_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_label = QLabel("No model loaded")
        self.model_label.setWordWrap(True)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #b9770e; font-weight: bold;")  # amber: a warning, not an error
        self.warning.hide()

        self.num_samples = QSpinBox(minimum=1, maximum=256, value=4)
        self.steps = QSpinBox(minimum=1, maximum=4096, value=64)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        self.seed_random = QCheckBox("random")
        self.seed_random.setToolTip("Draw a new seed for every run (the seed used is always recorded)")
        self.seed_random.toggled.connect(lambda on: self.seed.setEnabled(not on))
        self.temperature = QDoubleSpinBox(minimum=0.05, maximum=10.0, singleStep=0.05, value=1.0, decimals=2)
        self.top_p = QDoubleSpinBox(minimum=0.01, maximum=1.0, singleStep=0.05, value=1.0, decimals=2)
        self.top_p.setToolTip("Nucleus: keep the smallest set of values whose mass reaches p (1 = off)")
        self.top_k = QSpinBox(minimum=0, maximum=65536, value=0)
        self.top_k.setSpecialValueText("off")
        self.reveal = QComboBox()
        self.reveal.addItem("Joint", "joint")
        self.reveal.addItem("Marginal", "marginal")
        self.reveal.setToolTip(
            "Joint: draw a whole token, reveal some of its digits (default).\n"
            "Marginal: draw each revealed digit from its own marginal."
        )
        self.strategy = QComboBox()
        for name in eng.STRATEGIES:
            label, tip = STRATEGY_LABELS.get(name, (name.title(), ""))
            self.strategy.addItem(label, name)
            self.strategy.setItemData(self.strategy.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.strategy.setToolTip(
            "Which masked digits each step reveals. Ancestral is the model's own sampler (the one\n"
            "the valid bound describes); the others choose by the model's confidence and are not."
        )
        self.threshold = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, value=0.9, decimals=2)
        self.threshold.setToolTip(
            "Threshold strategy: reveal every digit whose confidence (the largest probability of its\n"
            "marginal) reaches this value; 1 = one digit per step, 0 = everything in one step"
        )
        self.strategy.currentIndexChanged.connect(self._strategy_changed)
        self.corrector = QDoubleSpinBox(minimum=0.0, maximum=0.5, singleStep=0.01, value=0.0, decimals=2)
        self.corrector.setSpecialValueText("off")
        self.corrector.setToolTip("Fraction of free visible digits re-masked and redrawn after each step")

        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.seed_random)
        form = QFormLayout()
        form.addRow("Samples", self.num_samples)
        form.addRow("Steps", self.steps)
        form.addRow("Seed", seed_row)
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("Top-k", self.top_k)
        form.addRow("Reveal", self.reveal)
        form.addRow("Strategy", self.strategy)
        form.addRow("Threshold", self.threshold)
        form.addRow("Corrector", self.corrector)

        self.text_box = QGroupBox("Text")
        self.prefix = QPlainTextEdit()
        self.prefix.setPlaceholderText("Prompt (prefix), optional")
        self.prefix.setMaximumHeight(70)
        self.suffix = QLineEdit()
        self.suffix.setPlaceholderText("Suffix for infilling, optional")
        self.length = QSpinBox(minimum=0, maximum=65536, value=0)
        self.length.setSpecialValueText("model length")
        text_form = QFormLayout(self.text_box)
        text_form.addRow("Prefix", self.prefix)
        text_form.addRow("Suffix", self.suffix)
        text_form.addRow("Length", self.length)
        self.text_box.hide()

        self.generate = QPushButton("Generate")
        self.generate.setObjectName("generate")
        self.generate.setToolTip("Generate (Ctrl+Enter)")
        self.generate.setDefault(True)
        self.generate.clicked.connect(self.generate_requested)
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Stop after the current step and keep the partial result (Esc)")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self.cancel_requested)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("ready")
        self.seed_used = QLabel("")
        self.seed_used.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.seed_used.setMinimumHeight(self.seed_used.fontMetrics().lineSpacing())  # its line stays put

        buttons = QHBoxLayout()
        buttons.addWidget(self.generate, 1)
        buttons.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.addWidget(self.model_label)
        layout.addWidget(self.warning)
        layout.addLayout(form)
        layout.addWidget(self.text_box)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.seed_used)
        layout.addStretch(1)
        self.set_values(DEFAULTS)

    # ------------------------------------------------------------------ model
    def set_model(self, name: str, modality: str, seq_length: int, untrained: bool) -> None:
        """Fit the form to the model: text fields for text models, a warning if untrained."""
        self.model_label.setText(
            f"<b>{name}</b><br><span style='color:#888'>{modality}, {seq_length} tokens</span>"
        )
        self.text_box.setVisible(modality == "text")
        self.warning.setText(
            "This model is untrained (random weights): its samples are noise. "
            "Import or train a model for real output."
            if untrained
            else ""
        )
        self.warning.setVisible(untrained)

    # ------------------------------------------------------------------ values
    def values(self) -> dict[str, Any]:
        """Current settings as a JSON-ready dict (seed = the fixed seed, see ``next_seed``)."""
        return {
            "num_samples": self.num_samples.value(),
            "steps": self.steps.value(),
            "seed": self.seed.value(),
            "seed_mode": "random" if self.seed_random.isChecked() else "fixed",
            "temperature": round(self.temperature.value(), 4),
            "top_k": self.top_k.value(),
            "top_p": round(self.top_p.value(), 4),
            "reveal": self.reveal.currentData(),
            "strategy": self.strategy.currentData(),
            "threshold": round(self.threshold.value(), 4),
            "corrector": round(self.corrector.value(), 4),
            "prefix": self.prefix.toPlainText(),
            "suffix": self.suffix.text(),
            "length": self.length.value(),
        }

    def set_values(self, values: dict[str, Any]) -> None:
        """Apply settings (unknown keys are ignored; missing ones keep their value)."""
        v = dict(values)
        setters = {
            "num_samples": lambda x: self.num_samples.setValue(int(x)),
            "steps": lambda x: self.steps.setValue(int(x)),
            "seed": lambda x: self.seed.setValue(int(x) % 2**31),
            "seed_mode": lambda x: self.seed_random.setChecked(x == "random"),
            "temperature": lambda x: self.temperature.setValue(float(x)),
            "top_k": lambda x: self.top_k.setValue(int(x)),
            "top_p": lambda x: self.top_p.setValue(float(x)),
            "reveal": lambda x: self.reveal.setCurrentIndex(max(0, self.reveal.findData(x))),
            "strategy": lambda x: self.strategy.setCurrentIndex(max(0, self.strategy.findData(x))),
            "threshold": lambda x: self.threshold.setValue(float(x)),
            "corrector": lambda x: self.corrector.setValue(float(x)),
            "prefix": lambda x: self.prefix.setPlainText(str(x)),
            "suffix": lambda x: self.suffix.setText(str(x)),
            "length": lambda x: self.length.setValue(int(x)),
        }
        for key, setter in setters.items():
            if key in v and v[key] is not None:
                try:
                    setter(v[key])
                except (TypeError, ValueError):
                    continue
        self.seed.setEnabled(not self.seed_random.isChecked())
        self._strategy_changed()

    def _strategy_changed(self, _index: int = 0) -> None:
        self.threshold.setEnabled(self.strategy.currentData() == "threshold")

    def next_seed(self) -> int:
        """The seed for the next run: a fresh random one, or the fixed one."""
        if self.seed_random.isChecked():
            seed = random.randrange(2**31)
            self.seed.setValue(seed)
            return seed
        return self.seed.value()

    # ------------------------------------------------------------------ running
    def set_running(self, running: bool) -> None:
        """Enable Cancel while a job runs."""
        self.cancel.setEnabled(running)
        if not running:
            self.progress.setFormat("ready")

    def set_progress(self, step: int, steps: int, text: str = "") -> None:
        """Progress bar at step/steps."""
        self.progress.setValue(int(1000 * step / max(1, steps)))
        self.progress.setFormat(text or f"step {step}/{steps}")
