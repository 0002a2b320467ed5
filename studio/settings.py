"""QSettings persistence: generation settings, view options and the window layout.

Settings live in one INI file in the data folder, ``<data>/settings.ini`` (the data folder is
``PRIME_STUDIO_HOME`` when set, else the platform folder of ``engine.data_dir()``), next to the
models, the outputs and the logs. Tests and ``--settings PATH`` pass another ini path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "Prime Studio"
APPLICATION = "Prime Studio"
SETTINGS_FILE = "settings.ini"
THEME_KEY = "appearance/theme"


def default_path() -> Path:
    """``<data folder>/settings.ini`` (the folder is created)."""
    from studio import enginelink

    return enginelink.data_dir() / SETTINGS_FILE


class Settings:
    """Typed access to the studio's settings, an INI file (``default_path()`` unless one is given).

    QSettings writes the file through a temporary file and a rename, so a crash never leaves it
    half-written; :meth:`sync` writes now (the window calls it whenever a setting changes).
    """

    def __init__(self, ini_path: str | Path | None = None) -> None:
        self.path = Path(ini_path) if ini_path else default_path()
        self.qsettings = QSettings(str(self.path), QSettings.Format.IniFormat)

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

    def theme(self) -> str:
        """The saved colour theme ("system", "light" or "dark"; "system" when unset or unknown)."""
        from studio.theme import THEMES

        value = self.get_json(THEME_KEY, "system")
        return value if value in THEMES else "system"

    def set_theme(self, name: str) -> None:
        """Save the colour theme (written now)."""
        from studio.theme import THEMES

        if name not in THEMES:
            raise ValueError(f"theme must be one of {THEMES}, got {name!r}")
        self.set_json(THEME_KEY, name)
        self.sync()

    def remove(self, key: str) -> None:
        """Forget a key."""
        self.qsettings.remove(key)

    def sync(self) -> None:
        """Write to disk now."""
        self.qsettings.sync()
