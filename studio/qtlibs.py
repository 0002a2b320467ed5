"""Before Qt starts on Linux: are the system libraries of Qt's xcb (X11) platform plugin there?

Without them Qt prints a long message and aborts the process (``This application failed to start
because no Qt platform plugin could be initialized``). :func:`check_xcb` runs ``ldd`` on the
plugin that PySide6 ships, and :func:`missing_message` turns what is missing into one line that
names the Debian/Ubuntu packages and the ``apt-get`` command. Nothing here imports Qt.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# soname -> Debian/Ubuntu package (checked with ``dpkg -S`` on Debian 12 for PySide6 6.11's
# libqxcb.so); the xcb plugin links all of these, directly or through libQt6XcbQpa.
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
}
# what find_library looks for when ldd is not available (the X11-specific ones)
XCB_LIBRARIES = tuple(name for name in DEBIAN_PACKAGES if "xcb" in name or "xkb" in name or "X11" in name)

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def uses_xcb(environ: os._Environ | dict[str, str] | None = None, platform: str = sys.platform) -> bool:
    """True when Qt will pick its xcb plugin: ``QT_QPA_PLATFORM=xcb``, or unset on Linux under X11."""
    env = os.environ if environ is None else environ
    if not platform.startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0] == "xcb"
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def xcb_plugin() -> Path | None:
    """PySide6's ``libqxcb.so`` (None when this PySide6 has none)."""
    spec = importlib.util.find_spec("PySide6")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if path.is_file():
            return path
    return None


def missing_from_ldd(output: str) -> list[str]:
    """The sonames ``ldd`` reported as ``not found`` (in its order, without repeats)."""
    return list(dict.fromkeys(_NOT_FOUND.findall(output)))


def missing_by_name(names: tuple[str, ...] | list[str] = XCB_LIBRARIES) -> list[str]:
    """The sonames ``ctypes.util.find_library`` cannot find (the fallback without ``ldd``)."""
    out = []
    for soname in names:
        stem = soname[3:].split(".so")[0]  # libxcb-cursor.so.0 -> xcb-cursor
        if ctypes.util.find_library(stem) is None:
            out.append(soname)
    return out


def check_xcb(plugin: Path | None = None, timeout: float = 10.0) -> list[str]:
    """Missing system libraries of the xcb plugin (empty when all are there or it cannot tell)."""
    plugin = plugin or xcb_plugin()
    ldd = shutil.which("ldd")
    if plugin is not None and ldd is not None:
        try:
            proc = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError):
            return missing_by_name()
        return missing_from_ldd(proc.stdout + proc.stderr)
    return missing_by_name()


def packages_for(missing: list[str]) -> list[str]:
    """Debian/Ubuntu package names for missing sonames (a soname we do not know stays as it is)."""
    return list(dict.fromkeys(DEBIAN_PACKAGES.get(name, name) for name in missing))


def missing_message(missing: list[str]) -> str:
    """One line: what is missing and the command that installs it."""
    packages = " ".join(packages_for(missing))
    return (
        f"error: Qt's X11 (xcb) platform plugin cannot start: missing system libraries "
        f"{', '.join(missing)}; install them with: sudo apt-get install {packages} "
        "(other distributions: the packages that provide these files), or run headless with "
        "QT_QPA_PLATFORM=offscreen"
    )
