"""The colour theme: the system's palette, or Fusion light or dark, applied live.

The View menu's Theme choice calls :func:`apply_theme`; the choice is saved in the settings
(:meth:`studio.settings.Settings.theme`) and applied again at start (``studio.app``).
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette

THEMES = ("system", "light", "dark")
THEME_LABELS = {"system": "System", "light": "Light", "dark": "Dark"}

_ROLE = QPalette.ColorRole
_GROUP = QPalette.ColorGroup


def _palette(colours: dict[QPalette.ColorRole, str], disabled: str) -> QPalette:
    palette = QPalette()
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (_ROLE.WindowText, _ROLE.Text, _ROLE.ButtonText, _ROLE.HighlightedText):
        palette.setColor(_GROUP.Disabled, role, QColor(disabled))
    return palette


def dark_palette() -> QPalette:
    """A dark palette for the Fusion style (text on dark grey; blue highlight)."""
    return _palette(
        {
            _ROLE.Window: "#353535",
            _ROLE.WindowText: "#eeeeee",
            _ROLE.Base: "#262626",
            _ROLE.AlternateBase: "#303030",
            _ROLE.ToolTipBase: "#202020",
            _ROLE.ToolTipText: "#eeeeee",
            _ROLE.PlaceholderText: "#9a9a9a",
            _ROLE.Text: "#eeeeee",
            _ROLE.Button: "#3c3c3c",
            _ROLE.ButtonText: "#eeeeee",
            _ROLE.BrightText: "#ff6b6b",
            _ROLE.Light: "#505050",
            _ROLE.Midlight: "#454545",
            _ROLE.Mid: "#2c2c2c",
            _ROLE.Dark: "#1e1e1e",
            _ROLE.Shadow: "#101010",
            _ROLE.Highlight: "#3d7fc4",
            _ROLE.HighlightedText: "#ffffff",
            _ROLE.Link: "#6cb0f5",
            _ROLE.LinkVisited: "#b58cf0",
        },
        disabled="#808080",
    )


def light_palette() -> QPalette:
    """A light palette for the Fusion style (Fusion's own light colours)."""
    return _palette(
        {
            _ROLE.Window: "#efefef",
            _ROLE.WindowText: "#000000",
            _ROLE.Base: "#ffffff",
            _ROLE.AlternateBase: "#f7f7f7",
            _ROLE.ToolTipBase: "#ffffdc",
            _ROLE.ToolTipText: "#000000",
            _ROLE.PlaceholderText: "#767676",
            _ROLE.Text: "#000000",
            _ROLE.Button: "#efefef",
            _ROLE.ButtonText: "#000000",
            _ROLE.BrightText: "#ffffff",
            _ROLE.Light: "#ffffff",
            _ROLE.Midlight: "#cacaca",
            _ROLE.Mid: "#b8b8b8",
            _ROLE.Dark: "#9f9f9f",
            _ROLE.Shadow: "#767676",
            _ROLE.Highlight: "#308cc6",
            _ROLE.HighlightedText: "#ffffff",
            _ROLE.Link: "#0000ff",
            _ROLE.LinkVisited: "#ff00ff",
        },
        disabled="#8c8c8c",
    )


def apply_theme(name: str, app: QGuiApplication | None = None) -> str:
    """Apply ``name`` (one of :data:`THEMES`) to the running application now; returns it.

    "system" gives the platform's palette back (Qt resolves an empty palette to it).
    """
    if name not in THEMES:
        raise ValueError(f"theme must be one of {THEMES}, got {name!r}")
    app = app or QGuiApplication.instance()
    hints = app.styleHints()
    if hasattr(hints, "setColorScheme"):  # Qt 6.8+: tell the platform (and colorScheme()) too
        scheme = Qt.ColorScheme
        hints.setColorScheme({"system": scheme.Unknown, "light": scheme.Light, "dark": scheme.Dark}[name])
    app.setPalette({"system": QPalette(), "light": light_palette(), "dark": dark_palette()}[name])
    # widgets get the new palette through posted events: deliver them now, so that whatever
    # runs next (re-rendering the text view in the theme's colours) sees the new palette
    QCoreApplication.sendPostedEvents(None, QEvent.Type.ApplicationPaletteChange)
    sheet = app.styleSheet() if hasattr(app, "styleSheet") else ""
    if sheet:  # styled widgets keep the palette they were polished with: polish them again
        app.setStyleSheet("")
        app.setStyleSheet(sheet)
    return name


def is_dark(palette: QPalette | None = None) -> bool:
    """True when the (application's) palette has a dark window background."""
    palette = palette or QGuiApplication.palette()
    return palette.color(_ROLE.Window).lightness() < 128


__all__ = ["THEMES", "THEME_LABELS", "apply_theme", "dark_palette", "is_dark", "light_palette"]
