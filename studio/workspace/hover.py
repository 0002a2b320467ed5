"""Hover details: digits, values still possible and the model's most likely values.

For a BPE text model the values are vocabulary entries, shown as words: a partially decided
token says how many entries its visible digits still allow and which are most likely.

A mixin of :class:`studio.workspace.session.Session`; probabilities come from the engine thread through
the bridge (one sample at the shown step, cached), never computed on the GUI thread.
"""

from __future__ import annotations

from typing import Any


class HoverMixin:
    """Canvas and text hover."""

    def hover_pixel(self, sample: int, row: int, col: int) -> None:
        """Canvas hover: details of the pixel's tokens (one per channel)."""
        if sample < 0 or self.shown_state is None or self.renderer is None:
            self._hover = None
            self.views.canvas.hover.setText(" ")
            return
        cfg = self.renderer.config
        first = (row * cfg.width + col) * cfg.channels
        self._hover = (sample, first, cfg.channels)
        self._refresh_hover()

    def hover_token(self, sample: int, token: int) -> None:
        """Text hover: details of one token."""
        if sample < 0 or self.shown_state is None:
            self._hover = None
            self.views.text.hover.setText(" ")
            self.views.text.view.viewport().setToolTip("")
            return
        self._hover = (sample, token, 1)
        self._refresh_hover()

    def _refresh_hover(self) -> None:
        if self._hover is None or self.shown_state is None or self.renderer is None:
            return
        sample, first, count = self._hover
        if sample >= self.shown_state.shape[0] or first + count > self.shown_state.shape[1]:
            return
        key = (self.entry.id if self.entry else -1, self.shown_step, sample)
        probs = self._probs.get(key)
        if probs is None:
            self._request_probs(key)
        if self.renderer.config.modality == "text" and self.renderer.bpe:
            self._show_vocabulary_hover(sample, first, probs[first] if probs is not None else None)
            return
        names = ("R", "G", "B") if count == 3 else ("",) * count
        parts = []
        for c in range(count):
            i = first + c
            info = self.renderer.token_info(
                self.shown_state[sample, i], i, probs[i] if probs is not None else None
            )
            likely = ", ".join(f"{v} ({p:.0%})" if probs is not None else str(v) for v, p in info.likely[:3])
            text = (
                f"{names[c]} digits [{info.digits_text()}] \u00b7 {info.state} \u00b7 {info.count} possible"
            )
            if info.count > 1:
                text += f" ({info.low}..{info.high})"
            if likely:
                text += f" \u00b7 likely {likely}"
            parts.append(text.strip())
        cfg = self.renderer.config
        if cfg.modality == "image":
            row, col = divmod(first // cfg.channels, cfg.width)
            where = f"sample {sample + 1}, pixel ({row}, {col})"
        else:
            where = f"sample {sample + 1}, byte {first}"
        label = self.views.text.hover if self.renderer.config.modality == "text" else self.views.canvas.hover
        label.setText(f"{where}: " + "  |  ".join(parts))

    def _show_vocabulary_hover(self, sample: int, token: int, probs: Any) -> None:
        """Text hover of a BPE model: the token's id and entry, or the entries its digits allow.

        The candidates are ranked by the model's probabilities once they arrived from the engine
        thread, until then by the prediction recorded at this step (then by id).
        """
        digits = self.shown_state[sample, token]
        renderer = self.renderer
        about = renderer.describe_text_token(digits, probs, self._recorded_prediction(sample, token))
        where = f"sample {sample + 1}, token {token + 1} of {self.shown_state.shape[1]}"
        text = f"{where}: digits [{renderer.token_info(digits, token).digits_text()}] \u00b7 {about}"
        self.views.text.hover.setText(text)
        self.views.text.view.viewport().setToolTip(f"{where}\n{about}")

    def _recorded_prediction(self, sample: int, token: int) -> int:
        """The model's predicted token recorded at the shown step (-1: none, or a live view)."""
        entry = self.entry
        if entry is None or (self.job is not None and not self.job.done()):
            return -1
        try:
            pred = entry.trajectory.prediction_at(self.shown_step)
        except ValueError:
            return -1
        if pred is None or sample >= pred.shape[0] or token >= pred.shape[1]:
            return -1
        return int(pred[sample, token])

    def _request_probs(self, key: tuple[int, int, int]) -> None:
        entry = self.entry
        if (
            entry is None
            or entry.model.key < 0  # a reopened output whose model is not loaded: digits only
            or key[0] != entry.id
            or self._probs_pending is not None
            or self.host.bridge.busy
            or self.shown_state is None
        ):
            return
        self._probs_pending = key
        state = self.shown_state[key[2] : key[2] + 1].clone()

        async def fetch() -> None:
            try:
                probs = await self.host.bridge.probabilities(entry.model, state)
                if len(self._probs) > 64:
                    self._probs.clear()
                self._probs[key] = probs[0]
            finally:
                self._probs_pending = None
            self._refresh_hover()

        self.host.spawn(fetch())
