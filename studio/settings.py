"""QSettings persistence: generation settings, view options and the window layout.

Tests pass an ini path so they never touch the user's settings.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "Prime Studio"
APPLICATION = "Prime Studio"


class Settings:
    """Typed access to the studio's QSettings (a native store, or an ini file when given)."""

    def __init__(self, ini_path: str | None = None) -> None:
        if ini_path:
            self.qsettings = QSettings(str(ini_path), QSettings.Format.IniFormat)
        else:
            self.qsettings = QSettings(ORGANIZATION, APPLICATION)

    def get_json(self, key: str, default: Any = None) -> Any:
        """A JSON value (stored as a string), or ``default`` when absent or unreadable."""
        raw = self.qsettings.value(key)
        if raw in (None, ""):
            return default
        try:
            return json.loads(str(raw))
        except ValueError:
            return default

    def set_json(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value."""
        self.qsettings.setValue(key, json.dumps(value, sort_keys=True))

    def get_bytes(self, key: str) -> QByteArray | None:
        """A QByteArray (window geometry/state), or None."""
        value = self.qsettings.value(key)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def set_bytes(self, key: str, value: QByteArray) -> None:
        """Store a QByteArray."""
        self.qsettings.setValue(key, value)

    def sync(self) -> None:
        """Write to disk now."""
        self.qsettings.sync()
