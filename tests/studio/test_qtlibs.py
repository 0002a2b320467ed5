"""Missing system libraries of Qt's xcb plugin are named in one line instead of Qt's abort."""

from __future__ import annotations

import shutil
import sys

import pytest

from studio import app, qtlibs

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd3a5f2000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f63b6d5e000)
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => /lib/x86_64-linux-gnu/libxcb-icccm.so.4 (0x00007f63b6160000)
\tlibxcb-cursor.so.0 => not found
\tlibweird.so.9 => not found
"""

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("ldd") is None, reason="ldd on Linux"
)


def test_ldd_output_is_read_and_named_by_package():
    missing = qtlibs.missing_from_ldd(LDD_OUTPUT)
    assert missing == ["libxkbcommon-x11.so.0", "libxcb-cursor.so.0", "libweird.so.9"]
    assert qtlibs.packages_for(missing) == ["libxkbcommon-x11-0", "libxcb-cursor0", "libweird.so.9"]
    line = qtlibs.missing_message(missing)
    assert "\n" not in line
    assert "sudo apt-get install libxkbcommon-x11-0 libxcb-cursor0 libweird.so.9" in line
    assert "QT_QPA_PLATFORM=offscreen" in line
    assert qtlibs.missing_from_ldd("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") == []


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, "linux", False),
        ({"QT_QPA_PLATFORM": "wayland;xcb"}, "linux", False),
        ({"DISPLAY": ":0"}, "linux", True),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
        ({}, "linux", False),
        ({"QT_QPA_PLATFORM": "xcb"}, "darwin", False),
    ],
)
def test_the_check_runs_only_when_qt_will_use_xcb(env, platform, expected):
    assert qtlibs.uses_xcb(env, platform) is expected


@linux_only
def test_ldd_and_the_ctypes_fallback_agree_on_this_machine():
    # a machine without a desktop may lack some X11 libraries; whatever it lacks, both ways of
    # looking name the same ones, and each has a package to install
    plugin = qtlibs.xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so"
    missing = qtlibs.check_xcb(plugin)
    x11 = [name for name in missing if name in qtlibs.XCB_LIBRARIES]
    assert sorted(qtlibs.missing_by_name()) == sorted(x11)
    assert all(name in qtlibs.DEBIAN_PACKAGES for name in missing), missing


@linux_only
def test_a_plugin_whose_libraries_cannot_be_found_is_reported(tmp_path):
    # a copy of the real plugin away from PySide6's lib folder: its Qt libraries are not found
    copy = tmp_path / "libqxcb.so"
    shutil.copy(qtlibs.xcb_plugin(), copy)
    missing = qtlibs.check_xcb(copy)
    assert "libQt6XcbQpa.so.6" in missing and "libQt6Core.so.6" in missing
    assert qtlibs.missing_by_name(["libsurely-not-installed-anywhere.so.1"]) == [
        "libsurely-not-installed-anywhere.so.1"
    ]


@linux_only
def test_the_studio_prints_one_line_instead_of_starting_qt(tmp_path, monkeypatch, capsys):
    copy = tmp_path / "libqxcb.so"
    shutil.copy(qtlibs.xcb_plugin(), copy)
    monkeypatch.setattr(qtlibs, "xcb_plugin", lambda: copy)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert app.main([]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: Qt's X11 (xcb) platform plugin cannot start") and "apt-get install" in err
    assert "libQt6XcbQpa.so.6" in err
