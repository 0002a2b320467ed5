"""Python's cyclic garbage collector runs on the GUI thread only, while the engine thread lives.

CPython collects reference cycles in whichever thread happens to allocate when a generation's
count passes its threshold. With the engine thread allocating all the time, that is often the
engine thread, and a cycle may hold Qt objects that Python owns (a closed top-level window, a
dialog or timer without a parent). Their C++ destructors then run off the thread they live in: a
QObject destroyed that way cannot unregister its timers from the GUI thread's event loop, which
later delivers a timer event to freed memory. On a loaded 2-core machine that was a segfault in
``QTimerInfoList::activateTimers`` within minutes (tests/studio/test_gcguard.py has the check).

While a :class:`GuiThreadCollector` is held, automatic collection is off and a GUI-thread timer
collects instead, generation by generation, whenever the counts pass the thresholds, the same
rule automatic collection follows. The previous state comes back when the last holder releases.
"""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 100  # how often the GUI thread looks at the counts (gen 0 fills in ~700 allocations)

_lock = threading.Lock()
_holders = 0
_was_enabled = False  # automatic collection was on before the first holder (else: collect nothing)


def collect_due() -> int | None:
    """Collect the oldest generation whose count passed its threshold; the generation, or None.

    The thresholds rule of CPython's automatic collection (gen 2 waits for 10 gen-1 collections),
    without its extra check that a full collection also waits until the long-lived objects grew
    by a quarter (Python does not expose those counts). A threshold of 0 for generation 0 means
    collection is off, as with ``gc.set_threshold(0)``.
    """
    counts, thresholds = gc.get_count(), gc.get_threshold()
    if thresholds[0] <= 0:
        return None
    for generation in (2, 1, 0):
        if counts[generation] > thresholds[generation]:
            gc.collect(generation)
            return generation
    return None


def _acquire() -> None:
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1


def _release() -> None:
    global _holders
    with _lock:
        _holders -= 1
        if _holders == 0 and _was_enabled:
            gc.enable()


def held() -> bool:
    """True while some collector holds automatic collection off."""
    with _lock:
        return _holders > 0


class GuiThreadCollector(QObject):
    """Holds automatic collection off and collects on this (the GUI) thread until :meth:`release`."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        _acquire()
        self._held = True
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def tick(self) -> int | None:
        """One look at the counts (the timer's slot); the generation collected, or None."""
        return collect_due() if self._held and _was_enabled else None

    def release(self) -> None:
        """Stop collecting here; automatic collection is back once no collector holds it."""
        if self._held:
            self._held = False
            self.timer.stop()
            _release()


__all__ = ["INTERVAL_MS", "GuiThreadCollector", "collect_due", "held"]
