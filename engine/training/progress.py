"""Terminal output for ``prime train``: a one-line progress bar with ETA, other events as lines."""

from __future__ import annotations

import sys
import time
from typing import Any

from engine.training.events import TrainEvent


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """A one-line progress bar on a terminal (else a line every ~5%); other events as lines."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last_draw = 0.0
        self.last_pct = -1
        self.open_line = False

    def _line(self, text: str) -> None:
        if self.open_line:
            self.stream.write("\n")
            self.open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, ev: TrainEvent) -> None:
        """Show one event."""
        if ev.kind == "step":
            pct = int(100 * ev.step / ev.steps)
            now = time.monotonic()
            width = 24
            filled = int(width * ev.step / ev.steps)
            text = (
                f"[{'#' * filled}{'.' * (width - filled)}] {ev.step}/{ev.steps} {pct:3d}% "
                f"{ev.objective} {ev.loss:.4f} lr {ev.lr:.2e} {ev.tokens_per_s or 0:,.0f} tok/s "
                f"ETA {_duration(ev.eta_s)}"
            )
            if self.tty and (now - self.last_draw > 0.1 or ev.step == ev.steps):
                self.stream.write("\r" + text + "\033[K")
                self.stream.flush()
                self.open_line = True
                self.last_draw = now
            elif not self.tty and (pct // 5 != self.last_pct // 5 or ev.step == ev.steps):
                self._line(text)
            self.last_pct = pct
        elif ev.kind == "start":
            info = ev.info or {}
            data = info.get("data", {})
            resumed = f", resumed at step {info['resumed_from']}" if info.get("resumed_from") else ""
            count = info.get("threads")
            threads = f" ({count} thread{'s' if count != 1 else ''})" if count else ""
            self._line(
                f"training {info.get('model_parameters', 0):,} parameters on {info.get('device')} "
                f"x{info.get('world_size', 1)}{threads}: {data.get('train_items')} train / "
                f"{data.get('val_items')} validation items{resumed}"
            )
        elif ev.kind == "eval" and ev.eval is not None:
            self._line(f"step {ev.step}: {ev.eval.line()}")
        elif ev.kind == "checkpoint":
            self._line(f"step {ev.step}: checkpoint {ev.checkpoint}")
        elif ev.kind == "preview":
            self._line(f"step {ev.step}: preview of {len(ev.preview)} samples")
        elif ev.kind in ("done", "cancelled"):
            self._line(ev.message)
