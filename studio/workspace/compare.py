"""Compare two models or two settings side by side.

Two models (e.g. Prime vs its MDM baseline) or two settings on the same seeds, side by
side, with NFE, idle steps and wall time. Also shows two history entries side by side.
"""

from __future__ import annotations

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
        self.model.setToolTip("Current model, or any model of the library")
        self.steps = QSpinBox(minimum=1, maximum=4096, value=64)
        self.temperature = QDoubleSpinBox(minimum=0.05, maximum=10.0, singleStep=0.05, value=1.0)
        self.reveal = QComboBox()
        self.reveal.addItem("joint", "joint")
        self.reveal.addItem("marginal", "marginal")
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

    def settings(self) -> dict[str, Any]:
        """This side's overrides."""
        return {
            "steps": self.steps.value(),
            "temperature": round(self.temperature.value(), 4),
            "reveal": self.reveal.currentData(),
        }


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
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addLayout(sides, 1)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        """Refresh the model choices when the tab is shown."""
        super().showEvent(event)
        self.refresh_models()

    def refresh_models(self) -> None:
        """Current model plus every usable library model."""
        from studio import enginelink

        choices: list[tuple[str, Any]] = []
        handle = self.session.handle
        if handle is not None:
            choices.append((f"current: {handle.name}", handle))
        try:
            for e in enginelink.eng.list_models():
                if e.info is not None:
                    choices.append((e.name, str(e.path)))
        except Exception:  # noqa: BLE001 - an unreadable library leaves only the current model
            pass
        for side in (self.a, self.b):
            current = side.model.currentText()
            side.model.clear()
            for label, data in choices:
                side.model.addItem(label, data)
            i = side.model.findText(current)
            if i >= 0:
                side.model.setCurrentIndex(i)

    async def _handle(self, side: Side):
        data = side.model.currentData()
        if data is None:
            raise ValueError("Load a model first (Models panel), then compare")
        if isinstance(data, str):  # a library model: loaded once, then reused
            current = self.session.handle
            handle = await self.session.load_model(data)
            if current is not None and current is not handle:
                self.session.set_model(current)  # comparing does not change the current model
            return handle
        return data

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
            result = await job
            settings = session._settings(values, handle, kind="compare", side=side.title())
            settings.update(nfe=list(result.nfe), idle_steps=list(result.idle_steps), seconds=result.seconds)
            entry = session.host.history.add("compare", handle, settings, result)
            session.save_or_report(entry)
            session.views.history_panel.add(entry, session.thumbnail(entry), select=False)
            entries.append(entry)
        self.show_entries(*entries)
        return entries

    def show_entries(self, a: Entry, b: Entry) -> None:
        """Show two entries' final samples side by side with their statistics."""
        session = self.session
        rows = []
        for side, entry in ((self.a, a), (self.b, b)):
            cfg = entry.model.config
            state = entry.trajectory.state_at(entry.steps_done)
            if cfg.modality == "image":
                side.view.show(), side.text.hide()
                side.view.set_image(
                    session.renderer_for(entry.model).render(state), state.shape[0], cfg.height, cfg.width
                )
            else:
                side.view.hide(), side.text.show()
                side.text.setPlainText("\n\n\u2014\u2014\n\n".join(session.entry_texts(entry)))
            s = entry.stats()
            side.stats.setText(
                f"#{entry.id} \u00b7 {entry.model.name} \u00b7 \u2113={cfg.ell} \u00b7 seed "
                f"{entry.settings.get('seed')} \u00b7 steps {entry.trajectory.steps}<br>"
                f"NFE <b>{num(s['nfe'])}</b> \u00b7 idle steps <b>{num(s['idle'])}</b> \u00b7 "
                f"wall <b>{s['seconds']:.2f} s</b>"
            )
            rows.append(s)
        da = rows[0]["nfe"] - rows[1]["nfe"]
        self.summary.setText(
            f"A\u2212B: NFE {da:+.1f}, idle steps {rows[0]['idle'] - rows[1]['idle']:+.1f} "
            f"(same seed; compare quality at equal NFE), "
            f"wall {rows[0]['seconds'] - rows[1]['seconds']:+.2f} s"
        )
