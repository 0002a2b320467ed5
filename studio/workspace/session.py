"""What the workspace does, as coroutines.

Load, generate (live), branch, inpaint, regenerate
detail / a text span, show any step, hover details, save and export outputs.

Every engine call goes through the bridge (``await job`` / ``async for snapshot in job``); the
GUI thread only renders snapshots it receives. The session does not know the main window: it
drives the widgets it is given (:class:`Views`) and asks its :class:`Host` (the window, or
anything with the same few members) for the bridge, the history, the outputs folder and status
messages.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from PySide6.QtWidgets import QLabel

from studio import enginelink, render
from studio.bridge import Bridge, ModelHandle
from studio.enginelink import eng
from studio.history.entries import Entry, History
from studio.history.tree import HistoryPanel
from studio.library import LibraryPanel, card_html
from studio.render import num
from studio.workspace.canvas import CanvasPanel
from studio.workspace.generate import REQUEST_KEYS, GeneratePanel
from studio.workspace.hover import HoverMixin
from studio.workspace.outputs import OutputsMixin, is_loaded
from studio.workspace.textview import TextPanel
from studio.workspace.timeline import Timeline

log = logging.getLogger(__name__)

PREVIEW_INTERVAL = 1 / 15  # seconds between live redraws (the bridge coalesces the rest)
MAX_TEXT_SAMPLES = 8


class Host(Protocol):
    """What a session needs from the window that holds it (:class:`studio.mainwindow.MainWindow`)."""

    bridge: Bridge
    history: History
    outputs_dir: Path

    def spawn(self, coro: Coroutine) -> Any:
        """Run a coroutine on the GUI loop; its exceptions become an error dialog."""

    def report_error(self, title: str, exc: BaseException) -> None:
        """Show an error dialog with details."""

    def flash(self, message: str, ms: int = 5000) -> None:
        """A status-bar message."""

    def show_view(self, modality: str) -> None:
        """Show the canvas (images) or the text view (text)."""


@dataclass(frozen=True)
class Views:
    """The widgets a session drives."""

    generate_panel: GeneratePanel
    canvas: CanvasPanel
    text: TextPanel
    timeline: Timeline
    library: LibraryPanel
    history_panel: HistoryPanel
    model_status: QLabel


class Session(HoverMixin, OutputsMixin):
    """The studio's state (current model, shown entry and step) and its async actions."""

    def __init__(self, host: Host, views: Views) -> None:
        self.host = host
        self.views = views
        self.handle: ModelHandle | None = None
        self.renderer: render.Renderer | None = None
        self.entry: Entry | None = None  # the entry shown
        self.job = None  # the sampling job this window waits on
        self.shown_state: torch.Tensor | None = None  # (N, L, ell) on screen
        self.shown_step = 0
        self._renderers: dict[int, render.Renderer] = {}
        self._loaded: dict[str, ModelHandle] = {}  # model files already on the engine thread
        self._probs: dict[tuple[int, int, int], torch.Tensor] = {}
        self._hover: tuple[int, int, int] | None = None
        self._probs_pending: tuple[int, int, int] | None = None
        self._no_sample = views.canvas.view.placeholder  # the canvas's text before any output
        views.history_panel.opener = self.open_quietly  # compare / export outputs of earlier sessions
        views.text.by_confidence.toggled.connect(lambda _on: self.show_step(self.shown_step))

    # ------------------------------------------------------------------ models
    def renderer_for(self, handle: ModelHandle) -> render.Renderer:
        """The renderer of a model (cached per model)."""
        if handle.key not in self._renderers:
            self._renderers[handle.key] = render.Renderer(handle.config)
        return self._renderers[handle.key]

    async def load_model(
        self, source: Any, name: str | None = None, recommend: bool = True, refresh: bool = False
    ) -> ModelHandle:
        """Load a model on the engine thread and make it current.

        ``recommend``: put the sampler settings it recommends in the Generate panel if it is another
        model than the current one (False when settings were just restored for it, see ``set_model``).
        ``refresh`` (with ``recommend`` False, at the next start): bring the fields an earlier
        recommendation set up to date if the model's recommendation changed since.
        """
        key = (
            str(Path(source).resolve()) if isinstance(source, (str, Path)) and Path(source).exists() else None
        )
        handle = self._loaded.get(key) if key else None
        if handle is None:
            self.host.flash(f"Loading {source if isinstance(source, str) else 'a model'}\u2026")
            handle = await self.host.bridge.load(source, name)
            if key:
                self._loaded[key] = handle
        if (self.handle is None or handle.key != self.handle.key) and not self._shows_output_of(handle):
            self.reset_view()
        self.set_model(handle, recommend=recommend, refresh=refresh)
        return handle

    def _shows_output_of(self, handle: ModelHandle) -> bool:
        """True when the entry on screen was made with ``handle``'s model (e.g. a reopened output)."""
        shown = self.entry.model if self.entry is not None else None
        if shown is None:
            return False
        if shown.key == handle.key:
            return True
        try:
            return (
                bool(shown.path and handle.path) and Path(shown.path).resolve() == Path(handle.path).resolve()
            )
        except OSError:
            return False

    def reset_view(self) -> None:
        """Another model: nothing of the previous one's output stays on screen.

        The timeline, its counters and strategy, the canvas / text view, hover lines, the progress
        bar and the seed used are cleared (a sampling job still running takes them over again).
        """
        if self.job is not None and not self.job.done():
            return  # the running job's live view stays; its result is shown when it ends
        self.entry = None
        self.shown_state, self.shown_step = None, 0
        self._hover = None
        tl = self.views.timeline
        tl.stop()
        tl.times = []
        tl.set_steps(0, [], [])
        tl.counters.setText("")
        tl.set_strategy("")
        self.views.canvas.view.placeholder = self._no_sample
        self.views.canvas.view.clear()
        self.views.text.view.set_segments([])
        for label in (self.views.canvas.hover, self.views.text.hover):
            label.setText(" ")
        panel = self.views.generate_panel
        panel.progress.setValue(0)
        panel.progress.setFormat("ready")
        panel.seed_used.setText("")

    def set_model(self, handle: ModelHandle, recommend: bool = True, refresh: bool = False) -> None:
        """Make a loaded model current: fit the panels to its modality.

        Switching to another model (or the first one) puts the sampler settings its card recommends
        in the Generate panel, and what the previous one's recommendation set back to the defaults
        (:meth:`GeneratePanel.apply_recommended`); not with ``recommend`` False (showing or
        reopening an output: the settings it was made with stay). Settings applied afterwards win.
        """
        switched = self.handle is None or handle.key != self.handle.key
        self.handle = handle
        self.renderer = self.renderer_for(handle)
        cfg = handle.config
        self.views.generate_panel.set_model(handle.name, cfg.modality, cfg.seq_length, handle.untrained)
        self.views.generate_panel.length.setMaximum(cfg.seq_length if cfg.modality == "text" else 0)
        self.views.generate_panel.set_recommendation(handle.card)
        if recommend and switched:
            self.views.generate_panel.apply_recommended()
        elif refresh:
            self.views.generate_panel.refresh_recommended()
        else:
            self.views.generate_panel.recommendation_seen()
        self.views.canvas.set_ell(cfg.ell)
        self.host.show_view(cfg.modality)
        status = f"{handle.name} \u00b7 {cfg.modality} \u00b7 \u2113={cfg.ell}, b={cfg.base}"
        status += f" \u00b7 {handle.num_parameters:,} parameters"
        self.views.model_status.setText(status + (" \u00b7 UNTRAINED" if handle.untrained else ""))
        self.views.library.mark_loaded(handle.path)
        if not self.views.library.select_path(handle.path):
            source = f"file {handle.path}" if handle.path else None
            self.views.library.show_loaded(
                card_html(handle.name, cfg.to_dict(), handle.card, None, source=source)
            )
        self.host.flash(f"Loaded {handle.name}")

    # ------------------------------------------------------------------ requests
    def make_request(self, settings: dict[str, Any], **overrides: Any) -> Any:
        """A SampleRequest from panel settings (always recording predictions for the views)."""
        kwargs = {k: settings[k] for k in REQUEST_KEYS if k in settings}
        steps = int(kwargs.get("steps", 64))
        kwargs.update(preview_every=max(1, steps // 256), record_predictions=True)
        kwargs.update(overrides)
        return eng.SampleRequest(**kwargs)

    def text_condition(self, settings: dict[str, Any]) -> Any:
        """Prefix / suffix conditioning for a text model (None when both are empty)."""
        assert self.handle is not None
        length_total = self.handle.config.seq_length
        length = int(settings.get("length") or length_total)
        # the user types text; the model's tokenizer (bytes or its BPE vocabulary) makes the tokens
        tokenizer = enginelink.tokenizer_of(self.handle.config)
        prefix = enginelink.text_to_tokens(settings.get("prefix") or "", tokenizer)
        suffix = enginelink.text_to_tokens(settings.get("suffix") or "", tokenizer)
        if not prefix.numel() and not suffix.numel():
            return None
        codec = eng.Codec.from_config(self.handle.config)
        return eng.text_condition(codec, length_total, prefix, suffix, end=length)

    def _require_model(self) -> ModelHandle:
        if self.handle is None:
            raise ValueError("No model is loaded: pick one in the Models panel (or create a random one)")
        return self.handle

    def _settings(self, values: dict[str, Any], handle: ModelHandle, **extra: Any) -> dict[str, Any]:
        out = dict(values)
        out.update(
            model=handle.name,
            model_path=handle.path,
            app_version=enginelink.app_version(),
            modality=handle.config.modality,
            ell=handle.config.ell,
        )
        out.update(extra)
        return out

    # ------------------------------------------------------------------ generate / branch / inpaint
    def start_generate(self) -> None:
        """Ctrl+Enter / Generate button."""
        self.host.spawn(self.generate())

    async def generate(self) -> Entry | None:
        """Sample with the panel's settings; live preview; the result joins the history."""
        handle = self._require_model()
        values = self.views.generate_panel.values()
        values["seed"] = self.views.generate_panel.next_seed()
        condition = self.text_condition(values) if handle.config.modality == "text" else None
        request = self.make_request(values, condition=condition)
        settings = self._settings(values, handle, kind="generate")
        job = self.host.bridge.generate(handle, request)
        return await self._follow(job, "generate", handle, settings, request.steps)

    async def branch(
        self,
        step: int | None = None,
        seed: int | None = None,
        parent: Entry | None = None,
        sample: int | None = None,
    ) -> Entry | None:
        """Continue an entry (default: the shown one) from ``step`` with a new seed.

        ``step`` defaults to the timeline's; ``sample`` branches that one sample only. An entry
        reopened from an earlier session first loads its model (an error says so if it is gone).
        """
        parent = parent or self._require_entry()
        k = self.views.timeline.value() if step is None else int(step)
        if not 0 <= k <= parent.steps_done:
            raise ValueError(f"branch step must be in 0..{parent.steps_done}, got {k}")
        seed = random.randrange(2**31) if seed is None else seed
        model = await self.ensure_model(parent)
        traj = parent.trajectory if sample is None else parent.trajectory.subset([sample])
        request = parent.result.request.replace(
            seed=seed, condition=None, record_predictions=True, num_samples=traj.num_samples
        )
        settings = dict(
            parent.settings,
            seed=seed,
            seed_mode="fixed",
            kind="branch",
            parent=parent.id,
            parent_output=parent.output,
            branch_step=k,
            num_samples=traj.num_samples,
        )
        settings.pop("output", None)
        if sample is not None:
            settings["parent_sample"] = sample
        job = self.host.bridge.branch(model, traj, k, request)
        prefix = (traj.revealed[:k].sum(1).tolist(), traj.idle[:k].float().mean(1).tolist())
        return await self._follow(job, "branch", model, settings, request.steps, parent.id, k, prefix)

    async def _conditioned(self, kind: str, condition: Any, parent: Entry, **extra: Any) -> Entry | None:
        values = self.views.generate_panel.values()
        values["seed"] = self.views.generate_panel.next_seed()
        values["num_samples"] = (
            int(condition.fixed.shape[0]) if condition.fixed.dim() == 3 else values["num_samples"]
        )
        request = self.make_request(values, condition=condition)
        model = await self.ensure_model(parent)  # a reopened output loads its model first
        settings = self._settings(
            values, model, kind=kind, parent=parent.id, parent_output=parent.output, **extra
        )
        job = self.host.bridge.generate(model, request, label=f"{kind} ({model.name})")
        return await self._follow(job, kind, model, settings, request.steps, parent.id)

    async def inpaint(self) -> Entry | None:
        """Regenerate the painted region of every sample of the shown entry."""
        parent = self._require_entry()
        cfg = parent.model.config
        mask = self.views.canvas.view.mask
        if cfg.modality != "image" or mask is None or not mask.any():
            raise ValueError("Paint the region to regenerate first (Brush, B), then press Inpaint")
        keep = ~torch.from_numpy(mask).unsqueeze(-1).expand(cfg.height, cfg.width, cfg.channels).reshape(-1)
        tokens = parent.result.tokens  # (N, L)
        keep = keep.unsqueeze(0) & (tokens >= 0)
        condition = eng.region_condition(eng.Codec.from_config(cfg), tokens, keep)
        return await self._conditioned("inpaint", condition, parent, inpaint_pixels=int(mask.sum()))

    async def regenerate_detail(self, keep_digits: int) -> Entry | None:
        """Keep the high digits of every pixel of the shown entry; resample the rest."""
        parent = self._require_entry()
        if parent.result.cancelled:
            raise ValueError("Regenerate detail needs a finished sample (this one was cancelled)")
        condition = eng.high_digits_condition(
            eng.Codec.from_config(parent.model.config), parent.result.tokens, keep_digits
        )
        return await self._conditioned("detail", condition, parent, keep_digits=keep_digits)

    async def regenerate_span(self, sample: int, start: int, end: int) -> Entry | None:
        """Keep one text sample except tokens start..end-1; resample the span."""
        parent = self._require_entry()
        tokens = parent.result.tokens[sample]  # (L,)
        keep = tokens >= 0
        keep[start:end] = False
        condition = eng.region_condition(eng.Codec.from_config(parent.model.config), tokens, keep)
        return await self._conditioned("infill", condition, parent, span=[sample, start, end])

    def _require_entry(self) -> Entry:
        if self.entry is None:
            raise ValueError("Generate something first")
        return self.entry

    def cancel_current(self) -> None:
        """Esc: stop the sampling this window follows (or whatever the engine runs)."""
        job = self.job if self.job is not None and not self.job.done() else None
        if job is None:
            running = [j for j in self.host.bridge.jobs() if j.status == "running"]
            job = running[0] if running else None
        if job is not None:
            job.cancel()
            self.host.flash("Cancelling: the engine stops after the current step")

    async def _follow(
        self,
        job,
        kind: str,
        handle: ModelHandle,
        settings: dict[str, Any],
        steps: int,
        parent: int | None = None,
        branch_step: int | None = None,
        prefix: tuple[list, list] | None = None,
    ) -> Entry | None:
        """Show a sampling job live, then record its result."""
        panel, timeline = self.views.generate_panel, self.views.timeline
        revealed, idle = (list(prefix[0]), list(prefix[1])) if prefix else ([], [])
        if not job.done() and job.status == "queued":
            self.host.flash(f"Queued: {job.label} (runs after {len(self.host.bridge.jobs()) - 1} job(s))")
        await job.wait_started()  # one job runs at a time: take over the display when ours does
        self.job = job
        panel.set_running(True)
        timeline.stop()
        timeline.times = []
        timeline.set_steps(steps, revealed, idle)
        timeline.show_live_step(len(revealed))
        # this job's own figures from its first step on, never the previous output's
        timeline.set_counters(0, sum(idle), steps)
        timeline.set_strategy(str(settings.get("strategy", "ancestral")))
        panel.seed_used.setText(f"seed {settings.get('seed')}")
        renderer = self.renderer_for(handle)
        self.host.show_view(handle.config.modality)
        last = 0.0
        pending = None
        try:
            async for snap in job:
                revealed.append(float(snap.revealed.sum()))
                idle.append(float(snap.idle.float().mean()))
                if snap.state is not None:
                    pending = snap
                now = time.perf_counter()
                if now - last >= PREVIEW_INTERVAL or snap.step == snap.steps:
                    last = now
                    panel.set_progress(
                        snap.step,
                        snap.steps,
                        f"step {snap.step}/{snap.steps} \u00b7 NFE {num(float(snap.nfe.float().mean()))}",
                    )
                    timeline.set_steps(steps, revealed, idle)
                    timeline.show_live_step(snap.step)  # the strip chart's cursor follows too
                    timeline.set_counters(float(snap.nfe.float().mean()), sum(idle), steps)
                    if pending is not None:
                        self._show_state(renderer, pending.state, pending.prediction, snap.step, live=True)
                        pending = None
            result = await job
        finally:
            panel.set_running(False)
            if self.job is job:
                self.job = None
        if result is None:  # cancelled before it started
            self.host.flash("Cancelled before it started")
            return None
        settings = dict(
            settings,
            nfe=list(result.nfe),
            idle_steps=list(result.idle_steps),
            seconds=round(float(result.seconds), 4),
            cancelled=bool(result.cancelled),
            steps_done=int(result.steps_done),
        )
        entry = self.host.history.add(kind, handle, settings, result, parent, branch_step)
        self.save_or_report(entry)  # saved as it is made: a crash later loses nothing
        self.entry = entry
        self.views.history_panel.add(entry, self.thumbnail(entry))
        self.show_entry(entry, entry.steps_done)
        stats = entry.stats()
        word = "Cancelled at" if result.cancelled else "Done:"
        self.host.flash(
            f"{word} step {result.steps_done}/{steps} \u00b7 NFE {num(stats['nfe'])} \u00b7 "
            f"idle {num(stats['idle'])} \u00b7 {stats['seconds']:.2f} s"
        )
        panel.set_progress(
            result.steps_done,
            steps,
            f"{'cancelled' if result.cancelled else 'done'} \u00b7 {result.steps_done}/{steps} steps",
        )
        panel.seed_used.setText(f"seed {settings.get('seed')}")
        return entry

    # ------------------------------------------------------------------ showing
    def select_entry(self, entry_id: int) -> None:
        """History selection: show that entry at its last step."""
        entry = self.host.history.get(entry_id)
        if entry is not self.entry:
            self.show_entry(entry, entry.steps_done)

    def show_entry(self, entry: Entry, step: int | None = None) -> None:
        """Show an entry on the canvas/text view and the timeline, at ``step``."""
        self.entry = entry
        # a reopened output whose model is not (yet) loaded is shown from the config saved with it
        if is_loaded(entry.model) and (self.handle is None or entry.model.key != self.handle.key):
            self.set_model(entry.model, recommend=False)  # showing an output changes no setting
        self.renderer = self.renderer_for(entry.model)
        self.views.canvas.set_ell(entry.model.config.ell)
        self.host.show_view(entry.model.config.modality)
        traj = entry.trajectory
        done = entry.steps_done
        tl = self.views.timeline
        tl.stop()
        tl.times = [float(t) for t in traj.times]
        tl.set_steps(
            traj.steps, traj.revealed[:done].sum(1).tolist(), traj.idle[:done].float().mean(1).tolist(), done
        )
        s = entry.stats()
        tl.set_counters(s["nfe"], s["idle"], traj.steps, s["seconds"])
        tl.set_strategy(str(entry.settings.get("strategy", "ancestral")))
        step = done if step is None else max(0, min(done, int(step)))
        if tl.value() == step:
            tl.show_live_step(step)  # no valueChanged: put the strip chart's cursor here too
            self.show_step(step)
        else:
            tl.seek(step)
        self.views.history_panel.select(entry.id)

    def show_step(self, step: int) -> None:
        """Render the shown entry exactly as recorded after ``step`` steps."""
        if self.entry is None or self.job is not None and not self.job.done():
            return
        traj = self.entry.trajectory
        step = max(0, min(self.entry.steps_done, int(step)))
        state = traj.state_at(step)
        mode = self.views.canvas.current_mode()
        prediction = traj.prediction_at(step) if mode == "prediction" else None
        if mode == "prediction" and prediction is None and self.entry.model.config.modality == "image":
            self._show_no_prediction(state, step)
            return
        by_confidence = mode == "confidence" or self.views.text.by_confidence.isChecked()
        confidence = traj.confidence_at(step) if by_confidence else None
        self._show_state(self.renderer_for(self.entry.model), state, prediction, step, confidence=confidence)

    def _show_no_prediction(self, state: torch.Tensor, step: int) -> None:
        """The Prediction view where none was recorded: say so instead of showing the state."""
        self.shown_state, self.shown_step = state, step
        traj = self.entry.trajectory
        why = (
            "this output was saved without the model's predictions"
            if traj.predictions is None
            else "the run stopped here, before the model looked at this state"
        )
        view = self.views.canvas.view
        view.placeholder = f"No prediction was recorded at step {step}: {why}.\nPress 1 for the state."
        view.clear()
        self.views.canvas.hover.setText(" ")

    def _show_state(
        self,
        renderer: render.Renderer,
        state: torch.Tensor,
        prediction: torch.Tensor | None,
        step: int,
        live: bool = False,
        confidence: torch.Tensor | None = None,
    ) -> None:
        self.shown_state, self.shown_step = state, step
        if renderer.config.modality == "image":
            self.views.canvas.view.placeholder = self._no_sample
            mode = self.views.canvas.current_mode()
            image = renderer.render(state, mode, prediction, confidence=confidence)
            cfg = renderer.config
            partial = renderer.partial_grid(state) if mode == "state" else None
            self.views.canvas.view.set_image(image, state.shape[0], cfg.height, cfg.width, partial=partial)
        else:
            self.views.text.view.dark = self.views.text.palette().base().color().lightness() < 128
            shown = range(min(MAX_TEXT_SAMPLES, state.shape[0]))
            segs = [renderer.text_segments(state[i]) for i in shown]
            shades = None
            if confidence is not None and self.views.text.by_confidence.isChecked():
                shades = [render.confidence_backgrounds(confidence[i]) for i in shown]
            self.views.text.view.set_segments(segs, shades)
        self._refresh_hover()

    def thumbnail(self, entry: Entry):
        """A small picture of an entry's final state (images only)."""
        if entry.model.config.modality != "image":
            return None
        state = entry.trajectory.state_at(entry.steps_done)[:1]
        return self.renderer_for(entry.model).render(state)
