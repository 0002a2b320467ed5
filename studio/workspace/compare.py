"""Compare two models or two settings side by side.

Two models (e.g. Prime vs its MDM baseline) or two settings on the same seeds, side by
side, with NFE, idle steps and wall time. Also shows two history entries side by side.
Only models of the same modality are offered; B starts as the twin of A (same data shape,
the other \u2113: digits-prime \u2192 digits-mdm). Both sides show their sample live while it
is generated, and one slider scrubs both trajectories in lockstep (at the same fraction of
their steps, so different step counts line up at the same diffusion time).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from studio.render import num
from studio.workspace.canvas import CanvasView

if TYPE_CHECKING:
    from studio.history.entries import Entry
    from studio.workspace.session import Session


class Side(QGroupBox):
    """One side of a comparison: model, steps, temperature, reveal; then its result."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.model = QComboBox()
        self.model.setToolTip("The loaded model, or a library model of the same modality")
        self.steps = QSpinBox(minimum=1, maximum=4096, value=64)
        self.temperature = QDoubleSpinBox(minimum=0.05, maximum=10.0, singleStep=0.05, value=1.0)
        self.reveal = QComboBox()
        self.reveal.addItem("Joint", "joint")  # spelled as in the Generate panel
        self.reveal.addItem("Marginal", "marginal")
        form = QFormLayout()
        form.addRow("Model", self.model)
        form.addRow("Steps", self.steps)
        form.addRow("Temperature", self.temperature)
        form.addRow("Reveal", self.reveal)
        self.view = CanvasView()
        self.view.placeholder = "Run a comparison"
        self.text = QTextEdit(readOnly=True)
        self.text.hide()
        self.stats = QLabel(" ")
        self.stats.setTextFormat(Qt.TextFormat.RichText)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.stats)
        self.entry: Entry | None = None  # the output shown (scrubbed by the panel's slider)

    def show_state(self, session: Session, handle: Any, state: Any, texts: list[str] | None = None) -> None:
        """Draw a state (N, L, ell) of ``handle``'s model: the image grid, or the texts.

        ``texts``: the decoded final texts (instead of the state's glyphs) of a finished text output.
        """
        cfg = handle.config
        renderer = session.renderer_for(handle)
        if cfg.modality == "image":
            self.view.show(), self.text.hide()
            self.view.set_image(renderer.render(state), state.shape[0], cfg.height, cfg.width)
        else:
            self.view.hide(), self.text.show()
            if texts is None:
                texts = ["".join(seg[0] for seg in renderer.text_segments(row)) for row in state]
            self.text.setPlainText("\n\n\u2014\u2014\n\n".join(texts))

    def settings(self) -> dict[str, Any]:
        """This side's overrides."""
        return {
            "steps": self.steps.value(),
            "temperature": round(self.temperature.value(), 4),
            "reveal": self.reveal.currentData(),
        }


def same_data(a: Any, b: Any) -> bool:
    """True when two ModelConfigs model the same data: modality, shape and levels."""
    if a.modality != b.modality or a.seq_length != b.seq_length or a.num_classes != b.num_classes:
        return False
    if a.modality == "image":
        return (a.height, a.width, a.channels) == (b.height, b.width, b.channels)
    return True


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def twin_of(name: str, config: Any, candidates: list[tuple[str, str, Any]]) -> str | None:
    """The key of ``config``'s twin among ``candidates`` (key, name, config), or None.

    The twin models the same data (:func:`same_data`) with the other kind of digits: an MDM
    baseline (\u2113=1) for a Prime model, a Prime model (\u2113>1) for a baseline. Of several, the
    one whose name shares the longest start with ``name`` (digits-prime \u2192 digits-mdm).
    """
    fits = [
        (key, other)
        for key, other, cfg in candidates
        if same_data(cfg, config) and (cfg.ell == 1) != (config.ell == 1)
    ]
    if not fits:
        return None
    return max(fits, key=lambda kv: _common_prefix(kv[1], name))[0]


CURRENT = "current"  # the combo key of the loaded model


class ComparePanel(QWidget):
    """Runs A and B on the same seeds through the bridge and shows them side by side."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.a, self.b = Side("A"), Side("B")
        self.samples = QSpinBox(minimum=1, maximum=64, value=4)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.run = QPushButton("Run both")
        self.run.setToolTip("Sample A then B with the same seed (queued on the engine thread)")
        self.run.clicked.connect(lambda: self.session.host.spawn(self.run_both()))
        self.summary = QLabel(
            "Pick two models (e.g. a Prime model and its \u2113=1 MDM baseline) or the same "
            "model with two settings. Both run on the same seed; compare quality at equal NFE."
        )
        self.summary.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Samples"))
        top.addWidget(self.samples)
        top.addWidget(QLabel("Seed"))
        top.addWidget(self.seed)
        top.addWidget(self.run)
        top.addStretch(1)
        sides = QHBoxLayout()
        sides.addWidget(self.a, 1)
        sides.addWidget(self.b, 1)
        self.scrub = QSlider(Qt.Orientation.Horizontal)
        self.scrub.setToolTip("Scrub both outputs together, at the same point of their trajectories")
        self.scrub.setRange(0, 0)
        self.scrub.setEnabled(False)
        self.scrub.valueChanged.connect(self.seek)
        self.scrub_label = QLabel(" ")
        scrub_row = QHBoxLayout()
        scrub_row.addWidget(QLabel("Step"))
        scrub_row.addWidget(self.scrub, 1)
        scrub_row.addWidget(self.scrub_label)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addLayout(sides, 1)
        layout.addLayout(scrub_row)
        self._choices: dict[str, tuple[str, Any, Any]] = {}  # key -> (name, config, handle or path)
        self._for_model: Any = None  # the loaded model the choices were made for
        self.a.model.currentIndexChanged.connect(self._a_changed)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Refresh the model choices when the tab is shown."""
        super().showEvent(event)
        self.refresh_models()

    def refresh_models(self) -> None:
        """The loaded model plus the usable library models of its modality; B = A's twin.

        The choices the user made stay while the loaded model stays the same.
        """
        from studio import enginelink

        handle = self.session.handle
        found: list[tuple[str, str, Any, Any]] = []  # key, name, config, source
        if handle is not None:
            found.append((CURRENT, handle.name, handle.config, handle))
        here = str(Path(handle.path).resolve()) if handle is not None and handle.path else None
        try:
            for e in enginelink.eng.list_models():
                if e.info is None or e.error:
                    continue
                key = str(Path(e.path).resolve())
                if key != here:  # the loaded model is listed once, as A's default
                    found.append((key, e.name, e.info.config, str(e.path)))
        except Exception:  # noqa: BLE001 - an unreadable library leaves only the current model
            pass
        modality = handle.config.modality if handle is not None else None
        if modality is None and found:
            modality = found[0][2].modality
        self._choices = {k: (n, c, src) for k, n, c, src in found if c.modality == modality}
        fresh = self._for_model != (handle.key if handle is not None else None)
        self._for_model = handle.key if handle is not None else None
        keep_a, keep_b = (None, None) if fresh else (self.a.model.currentData(), self.b.model.currentData())
        for side in (self.a, self.b):
            side.model.blockSignals(True)
            side.model.clear()
            for key, (name, _cfg, _src) in self._choices.items():
                side.model.addItem(f"{name} (loaded)" if key == CURRENT else name, key)
            side.model.blockSignals(False)
        self._select(self.a, keep_a if keep_a in self._choices else next(iter(self._choices), None))
        if keep_b in self._choices:
            self._select(self.b, keep_b)
        else:
            self._default_b()

    @staticmethod
    def _select(side: Side, key: str | None) -> None:
        i = side.model.findData(key) if key is not None else -1
        side.model.blockSignals(True)
        side.model.setCurrentIndex(max(i, 0) if side.model.count() else -1)
        side.model.blockSignals(False)

    def _a_changed(self, _index: int) -> None:
        self._default_b()

    def _default_b(self) -> None:
        """B = the twin of A's model (same data, the other \u2113), else the same model as A."""
        key = self.a.model.currentData()
        if key not in self._choices:
            return
        name, cfg, _src = self._choices[key]
        others = [(k, n, c) for k, (n, c, _s) in self._choices.items() if k != key]
        self._select(self.b, twin_of(name, cfg, others) or key)

    async def _handle(self, side: Side):
        key = side.model.currentData()
        if key is None or key not in self._choices:
            raise ValueError("Load a model first (Models panel), then compare")
        source = self._choices[key][2]
        if isinstance(source, str):  # a library model: loaded once, then reused
            return await self._load_quietly(source)
        return source

    async def _load_quietly(self, path: str) -> Any:
        """A library model's handle without making it the current model (comparing changes nothing)."""
        session = self.session
        key = str(Path(path).resolve())
        handle = session._loaded.get(key)
        if handle is None:
            handle = await session.host.bridge.load(path)
            session._loaded[key] = handle
        return handle

    async def _follow(self, side: Side, handle: Any, job: Any) -> Any:
        """Show the job's sample on ``side`` while it is generated (at most 15 redraws a second)."""
        side.entry = None
        side.stats.setText(f"generating with {handle.name}\u2026")
        last, pending = 0.0, None
        async for snap in job:
            if snap.state is not None:
                pending = snap
            now = time.perf_counter()
            if pending is not None and (now - last >= 1 / 15 or snap.step == snap.steps):
                last = now
                side.show_state(self.session, handle, pending.state)
                side.stats.setText(f"{handle.name}: step {snap.step} / {snap.steps}")
                pending = None
        return await job

    async def run_both(self) -> list[Entry]:
        """Run A then B on the same seed; add both to the history; show them side by side."""
        self.refresh_models() if self.a.model.count() == 0 else None
        session = self.session
        base = session.views.generate_panel.values()
        entries = []
        for side in (self.a, self.b):
            handle = await self._handle(side)
            values = dict(base, num_samples=self.samples.value(), seed=self.seed.value(), **side.settings())
            request = session.make_request(values)
            job = session.host.bridge.generate(
                handle, request, label=f"compare {side.title()} ({handle.name})"
            )
            result = await self._follow(side, handle, job)
            settings = session._settings(values, handle, kind="compare", side=side.title())
            settings.update(nfe=list(result.nfe), idle_steps=list(result.idle_steps), seconds=result.seconds)
            entry = session.host.history.add("compare", handle, settings, result)
            session.save_or_report(entry)
            session.views.history_panel.add(entry, session.thumbnail(entry), select=False)
            entries.append(entry)
        self.show_entries(*entries)
        return entries

    def show_entries(self, a: Entry, b: Entry) -> None:
        """Show two entries' final samples side by side with their statistics; arm the slider."""
        rows = []
        for side, entry in ((self.a, a), (self.b, b)):
            cfg = entry.model.config
            side.entry = entry
            self._show_at(side, entry.steps_done)
            s = entry.stats()
            side.stats.setText(
                f"#{entry.id} \u00b7 {entry.model.name} \u00b7 \u2113={cfg.ell} \u00b7 seed "
                f"{entry.settings.get('seed')} \u00b7 steps {entry.trajectory.steps}<br>"
                f"NFE <b>{num(s['nfe'])}</b> \u00b7 idle steps <b>{num(s['idle'])}</b> \u00b7 "
                f"wall <b>{s['seconds']:.2f} s</b>"
            )
            rows.append(s)
        longest = max(a.steps_done, b.steps_done)
        self.scrub.blockSignals(True)
        self.scrub.setRange(0, longest)
        self.scrub.setValue(longest)
        self.scrub.blockSignals(False)
        self.scrub.setEnabled(longest > 0)
        self._scrub_text(longest)
        da = rows[0]["nfe"] - rows[1]["nfe"]
        self.summary.setText(
            f"A\u2212B: NFE {da:+.1f}, idle steps {rows[0]['idle'] - rows[1]['idle']:+.1f} "
            f"(same seed; compare quality at equal NFE), "
            f"wall {rows[0]['seconds'] - rows[1]['seconds']:+.2f} s"
        )

    def steps_at(self, value: int) -> tuple[int, int]:
        """The step of A and of B shown at slider position ``value`` (the same fraction of each)."""
        top = max(1, self.scrub.maximum())
        out = []
        for side in (self.a, self.b):
            done = side.entry.steps_done if side.entry is not None else 0
            out.append(round(value * done / top))
        return out[0], out[1]

    def seek(self, value: int) -> None:
        """Show both outputs at slider position ``value``, in lockstep."""
        for side, step in zip((self.a, self.b), self.steps_at(value), strict=True):
            self._show_at(side, step)
        self._scrub_text(value)

    def _show_at(self, side: Side, step: int) -> None:
        entry = side.entry
        if entry is None:
            return
        final = step >= entry.steps_done and entry.model.config.modality == "text"
        texts = self.session.entry_texts(entry) if final else None
        side.show_state(self.session, entry.model, entry.trajectory.state_at(step), texts)

    def _scrub_text(self, value: int) -> None:
        sa, sb = self.steps_at(value)
        da = self.a.entry.steps_done if self.a.entry is not None else 0
        db = self.b.entry.steps_done if self.b.entry is not None else 0
        self.scrub_label.setText(f"A {sa}/{da} \u00b7 B {sb}/{db}")
