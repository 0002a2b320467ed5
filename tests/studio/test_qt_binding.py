"""The Qt binding must not leak references to ``None`` (PySide6 6.12.0 on CPython < 3.12 does).

A leaking build lowers ``None``'s reference count once per Qt call that returns nothing; after a
few tens of thousands of such calls (a long generation redraws that often) CPython aborts with
``Fatal Python error: none_dealloc``. Python 3.12+ has an immortal ``None``, so the count cannot
tell there and the test is skipped.

The calls run in batches and the test fails at the first batch that lost references, long before
the count could reach zero and take the test process with it.
"""

from __future__ import annotations

import gc
import sys

import pytest

CALLS = 21_000  # at least 20,000 void Qt calls in all
BATCH = 1_000
TOLERANCE = 100  # unrelated objects freed during the loop; a leaking build loses one per call


@pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="None is immortal on Python >= 3.12: its reference count never changes, so a leak cannot show",
)
def test_void_qt_calls_do_not_lose_references_to_none(qapp):
    import PySide6
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QColor, QImage, QPainter
    from PySide6.QtWidgets import QLabel, QWidget

    image = QImage(32, 32, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    label = QLabel()
    widget = QWidget()
    rect, colour = QRect(0, 0, 8, 8), QColor(10, 20, 30)
    calls = (
        lambda: painter.fillRect(rect, colour),
        lambda: label.setText("step"),
        widget.update,
    )
    try:
        for call in calls:  # warm up: first calls may fill caches
            call()
        gc.collect()
        start = sys.getrefcount(None)
        done = 0
        while done < CALLS:
            call = calls[(done // BATCH) % len(calls)]
            for _ in range(BATCH):
                call()
            done += BATCH
            drift = sys.getrefcount(None) - start
            assert drift > -TOLERANCE, (
                f"PySide6 {PySide6.__version__} on Python {sys.version.split()[0]} lost {-drift} references "
                f"to None in {done} void Qt calls: this binding leaks and will abort the studio "
                "(Fatal Python error: none_dealloc); install another version (see pyproject.toml)"
            )
        gc.collect()
        assert sys.getrefcount(None) - start > -TOLERANCE
    finally:
        painter.end()
        label.deleteLater()
        widget.deleteLater()
    assert done >= 20_000
