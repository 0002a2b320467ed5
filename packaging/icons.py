"""Render the application icon for installers: PNG sizes, Windows .ico, macOS .icns.

The source is ``assets/icons/prime-studio.svg`` (what the studio shows as its window icon). Qt
renders the SVG (QtSvg, part of PySide6-Essentials, offscreen: no display needed) and Pillow
writes the .ico and .icns containers. The results are committed under ``packaging/icons/`` with
the SVG's SHA-256 in ``SOURCE.sha256``, so a build never needs to render; ``build.py`` reruns
this when the SVG has changed::

    python packaging/icons.py          # regenerate packaging/icons/
    python packaging/icons.py --check  # exit 1 when packaging/icons/ is stale
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "assets" / "icons" / "prime-studio.svg"
OUT = Path(__file__).resolve().parent / "icons"
STAMP = "SOURCE.sha256"
NAME = "prime-studio"

# Linux hicolor theme sizes (the SVG also goes in as "scalable"); the .ico holds the Windows
# shell sizes; the .icns is written from the 1024 px rendering (Pillow derives the smaller ones).
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZE = 1024


def source_digest(source: Path = SOURCE) -> str:
    """SHA-256 of the SVG the icons are rendered from."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def is_current(out: Path = OUT, source: Path = SOURCE) -> bool:
    """True when ``out`` holds every icon file and was rendered from the current SVG."""
    stamp = out / STAMP
    files = expected_files(out)
    return (
        stamp.is_file()
        and stamp.read_text().split()[0] == source_digest(source)
        and all(f.is_file() for f in files)
    )


def expected_files(out: Path = OUT) -> list[Path]:
    """Every file :func:`render_icons` writes (the stamp aside)."""
    return [out / f"{NAME}-{s}.png" for s in PNG_SIZES] + [out / f"{NAME}.ico", out / f"{NAME}.icns"]


def _render_png(source: Path, size: int) -> bytes:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(source))
    if not renderer.isValid():
        raise ValueError(f"{source}: not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def render_icons(out: Path = OUT, source: Path = SOURCE) -> list[Path]:
    """Write the PNGs, the .ico and the .icns into ``out``; return the written paths."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PIL import Image
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # QImage/QPainter need one
    out.mkdir(parents=True, exist_ok=True)
    images = {}
    for size in sorted({*PNG_SIZES, *ICO_SIZES, ICNS_SIZE}):
        images[size] = Image.open(io.BytesIO(_render_png(source, size))).convert("RGBA")
    written = []
    for size in PNG_SIZES:
        path = out / f"{NAME}-{size}.png"
        images[size].save(path, optimize=True)
        written.append(path)
    ico = out / f"{NAME}.ico"
    largest = max(ICO_SIZES)
    images[largest].save(
        ico,
        sizes=[(s, s) for s in ICO_SIZES],
        append_images=[images[s] for s in ICO_SIZES if s != largest],
    )
    icns = out / f"{NAME}.icns"
    images[ICNS_SIZE].save(icns, append_images=[images[s] for s in (16, 32, 64, 128, 256, 512)])
    written += [ico, icns]
    (out / STAMP).write_text(f"{source_digest(source)}  {source.name}\n")
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: regenerate, or ``--check`` that the committed icons are current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    args = parser.parse_args(argv)
    if args.check:
        current = is_current()
        print(f"{OUT}: {'current' if current else 'STALE: run python packaging/icons.py'}")
        return 0 if current else 1
    for path in render_icons():
        print(f"{path.relative_to(OUT.parent.parent)}  {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
