"""The generation panel.

Samples, steps, seed (random or fixed, always recorded), temperature,
top-p/top-k, reveal mode, reveal strategy (and its threshold), corrector; for text also prefix,
suffix and length; Generate / Cancel and a progress bar.

A model card may recommend sampler settings (``"sampler"``: :func:`engine.recommended_settings`):
switching to that model puts them in the fields (:meth:`GeneratePanel.apply_recommended`), a line
under the model's name says what they are, and its *Use* button puts them back. Fields the previous
model's recommendation set, and the user has not changed since, go back to :data:`DEFAULTS`.
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
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio import enginelink
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
    "corrector_start": 1.0,
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
    "corrector_start",
)
# recommendable settings (engine.RECOMMENDABLE_SETTINGS) this panel has a field for; the others
# (temperature_end, time_warp) are named on the recommendation line as not applied
PANEL_SAMPLER_KEYS = tuple(key for key in REQUEST_KEYS if key in eng.RECOMMENDABLE_SETTINGS)
USE_TIP = "Set these fields to the values this model recommends again"
IN_USE_TIP = "The fields hold the values this model recommends"
NEAREST = " \u00b7 the nearest the fields allow: "  # a recommended value outside a field's range
MAX_NOTE = 160  # characters of a card's error shown on the line (all of it in the tooltip)
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
        # what the model recommends, with a button that puts it in the fields again
        self.recommended: dict[str, Any] = {}  # the current model's (validated) recommendation
        self._applied: dict[str, Any] = {}  # field -> the value a recommendation put there
        self._source: dict[str, Any] = {}  # the recommendation those came from (its panel fields)
        self.recommended_label = QLabel("")
        self.recommended_label.setObjectName("recommendedSettings")
        self.recommended_label.setTextFormat(Qt.TextFormat.PlainText)  # the card's text, never markup
        self.recommended_label.setWordWrap(True)
        self.use_recommended = QToolButton(text="Use")
        self.use_recommended.setObjectName("useRecommended")
        self.use_recommended.setToolTip(USE_TIP)
        self.use_recommended.clicked.connect(lambda _checked=False: self.apply_recommended())
        self.recommended_row = QWidget()
        row = QHBoxLayout(self.recommended_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.recommended_label, 1)
        row.addWidget(self.use_recommended, 0, Qt.AlignmentFlag.AlignTop)
        self.recommended_row.hide()

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
        self.corrector_start = QDoubleSpinBox(minimum=0.05, maximum=1.0, singleStep=0.05, decimals=2)
        self.corrector_start.setValue(1.0)
        self.corrector_start.setPrefix("t \u2264 ")
        self.corrector_start.setToolTip(
            "The corrector works only once the time has fallen to this value (time runs from 1 at\n"
            "the first step to 0 at the last): 1 = after every step, 0.5 = in the second half"
        )
        self.corrector.valueChanged.connect(self._corrector_changed)
        self._corrector_changed()
        # *Use* is offered only while a recommended field holds something else
        for key in PANEL_SAMPLER_KEYS:
            field = self._field(key)
            signal = field.currentIndexChanged if isinstance(field, QComboBox) else field.valueChanged
            signal.connect(self._sync_use)

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
        form.addRow("Corrector from", self.corrector_start)

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
        layout.addWidget(self.recommended_row)
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

    def set_recommendation(self, card: Any) -> dict[str, Any]:
        """Read the sampler settings a model card recommends and say so under the model's name.

        Applies nothing (see :meth:`apply_recommended`). A recommendation the card gets wrong is a
        one-line warning and counts as none; a hostile card never raises here.
        """
        recommended, problem = enginelink.recommended_settings(card)
        self.recommended = recommended
        label = self.recommended_label
        if problem:
            short = problem if len(problem) <= MAX_NOTE else problem[: MAX_NOTE - 1] + "\u2026"
            label.setText(f"This model's recommended settings are invalid ({short}): plain defaults used")
            label.setToolTip(problem)
            label.setStyleSheet("color: #b9770e;")  # amber, as the untrained warning
        elif recommended:
            text = f"Recommended by this model: {enginelink.describe_settings(recommended)}"
            missing = [k.replace("_", "-") for k in recommended if k not in PANEL_SAMPLER_KEYS]
            if missing:
                text += f" ({', '.join(missing)}: not in this panel, not applied)"
            label.setText(text)
            label.setToolTip(
                "The sampler settings this model's card recommends: set when you switch to it; "
                "what you change afterwards stays"
            )
            label.setStyleSheet("")
        self.use_recommended.setVisible(bool(recommended))
        self.recommended_row.setVisible(bool(problem or recommended))
        self._sync_use()
        return recommended

    def apply_recommended(self) -> None:
        """Put the current model's recommended settings in their fields (switching model, *Use*).

        Fields an earlier recommendation set and the user has not changed since go back to
        :data:`DEFAULTS`; a field whose range cannot hold a recommended value keeps the nearest.
        """
        current = self.values()
        back = {
            key: DEFAULTS[key]
            for key, value in self._applied.items()
            if key not in self.recommended and current.get(key) == value
        }
        wanted = {key: value for key, value in self.recommended.items() if key in PANEL_SAMPLER_KEYS}
        self._set(back)
        self._set(wanted)
        now = self.values()
        self._applied = {key: now[key] for key in wanted}
        self._source = dict(wanted)
        inexact = {
            key: now[key]
            for key, value in wanted.items()
            if now[key] != (round(value, 4) if isinstance(value, float) else value)
        }
        text = self.recommended_label.text().split(NEAREST)[0]
        if inexact:
            text += NEAREST + enginelink.describe_settings(inexact)
        self.recommended_label.setText(text)
        self._sync_use()

    def recommendation_pending(self) -> bool:
        """Whether *Use* would change a field: one the recommendation names holds another value.

        A recommended value a field cannot hold counts as the nearest value the field allows.
        """
        current = self.values()
        for key, value in self.recommended.items():
            if key in PANEL_SAMPLER_KEYS and current[key] != self._nearest(key, value):
                return True
        return False

    def _field(self, key: str) -> QSpinBox | QDoubleSpinBox | QComboBox:
        return getattr(self, key)

    def _nearest(self, key: str, value: Any) -> Any:
        """What field ``key`` would hold once set to ``value`` (as :meth:`values` reads it)."""
        field = self._field(key)
        if isinstance(field, QComboBox):
            return field.itemData(max(0, field.findData(value)))
        if isinstance(field, QDoubleSpinBox):
            return round(min(max(float(value), field.minimum()), field.maximum()), min(4, field.decimals()))
        return min(max(int(value), field.minimum()), field.maximum())

    def _sync_use(self, *_args: Any) -> None:
        pending = self.recommendation_pending()
        self.use_recommended.setEnabled(pending)
        self.use_recommended.setToolTip(USE_TIP if pending else IN_USE_TIP)

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
            "corrector_start": round(self.corrector_start.value(), 4),
            "prefix": self.prefix.toPlainText(),
            "suffix": self.suffix.text(),
            "length": self.length.value(),
        }

    def applied_recommendation(self) -> dict[str, Any]:
        """Field -> value that a model's recommendation set and the user has not changed since.

        Saved with the settings (``generate/recommended``) so that after a restart switching to a
        plain model still puts them back to the defaults (:meth:`restore_applied_recommendation`).
        """
        current = self.values()
        return {key: value for key, value in self._applied.items() if current.get(key) == value}

    def recommendation_source(self) -> dict[str, Any]:
        """The recommendation the applied fields came from (saved as ``generate/recommendation``)."""
        return dict(self._source)

    def restore_applied_recommendation(self, applied: Any, source: Any = None) -> None:
        """Restore what the two methods above returned in an earlier session.

        Applied fields count only where they still hold that value.
        """
        if not isinstance(applied, dict):
            return
        current = self.values()
        self._applied = {
            key: current[key]
            for key, value in applied.items()
            if key in PANEL_SAMPLER_KEYS and type(value) is type(current[key]) and value == current[key]
        }
        if isinstance(source, dict):
            self._source = {key: value for key, value in source.items() if key in PANEL_SAMPLER_KEYS}
        else:  # settings saved before the source was: what was applied is the best guess
            self._source = dict(self._applied)

    def recommendation_seen(self) -> None:
        """The fields now answer to the current model's recommendation as it is.

        (An output's settings shown for it, or the same model again.) A later start refreshes
        nothing unless that recommendation changes.
        """
        self._source = {key: value for key, value in self.recommended.items() if key in PANEL_SAMPLER_KEYS}

    def refresh_recommended(self) -> None:
        """At the next start, when the last model's recommendation changed since the settings were saved.

        A field the earlier recommendation set and the user left takes the new recommendation (or
        its default when the new one does not name it); a field only the new one names takes it if
        the field is still at its default. What the user set stays. Nothing happens when the
        recommendation is the one the fields came from.
        """
        wanted = {key: value for key, value in self.recommended.items() if key in PANEL_SAMPLER_KEYS}
        if wanted == self._source:
            return
        current = self.values()
        change = {key: wanted.get(key, DEFAULTS[key]) for key in self._applied}
        for key, value in wanted.items():
            if key not in self._applied and key not in self._source and current.get(key) == DEFAULTS[key]:
                change[key] = value
        self._set(change)
        now = self.values()
        self._applied = {key: now[key] for key in change if key in wanted}
        self._source = wanted

    def set_values(self, values: dict[str, Any]) -> None:
        """Apply settings (unknown keys are ignored; missing ones keep their value).

        Values set here are the user's (restored settings, a reopened output): switching model
        later does not put them back to the defaults.
        """
        v = dict(values)
        for key in v:
            self._applied.pop(key, None)
        self._set(v)

    def _set(self, v: dict[str, Any]) -> None:
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
            "corrector_start": lambda x: self.corrector_start.setValue(float(x)),
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

    def _corrector_changed(self, _value: float = 0.0) -> None:
        self.corrector_start.setEnabled(self.corrector.value() > 0)

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
