"""Registries that let panels plug into the main window without editing it.

A panel module (e.g. ``studio/train/panel.py``) calls :func:`register_panel` at import time
to add a tab, and :func:`register_self_test` to add a ``--self-test NAME`` script. The main window
imports the optional panel modules listed in ``OPTIONAL_PANELS`` when they exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

OPTIONAL_PANELS = ("studio.train.panel", "studio.history.gallery")


@dataclass(frozen=True)
class PanelSpec:
    """A tab of the main window: ``factory(window) -> QWidget``; tabs are sorted by ``order``."""

    title: str
    factory: Callable[[Any], Any]
    order: int = 100


PANELS: dict[str, PanelSpec] = {}
SELF_TESTS: dict[str, Callable[[Any, Any], Awaitable[None]]] = {}


def register_panel(title: str, factory: Callable[[Any], Any], order: int = 100) -> None:
    """Add a tab titled ``title`` built by ``factory(main_window)``."""
    PANELS[title] = PanelSpec(title, factory, order)


def register_self_test(name: str, script: Callable[[Any, Any], Awaitable[None]]) -> None:
    """Add ``--self-test name``: ``await script(main_window, args)``; raise to fail the test."""
    SELF_TESTS[name] = script
