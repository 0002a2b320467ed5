"""What the packaged application must carry, in one place (no PyInstaller import here).

``prime_studio.spec`` builds its data list and its exclusions from these functions, and
``tests/packaging`` checks them against what the studio loads at run time, so the spec, the
fast test and the docs agree. Everything is computed at build time: the bundled models are
whatever ``assets/models`` holds when the build runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from icons import PNG_SIZES as HICOLOR_SIZES

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
ICONS = Path(__file__).resolve().parent / "icons"
LINUX = Path(__file__).resolve().parent / "linux"
DESKTOP_FILE = ASSETS / "prime-studio.desktop"  # the studio's entry; the installer points Exec here
SVG_ICON = ASSETS / "icons" / "prime-studio.svg"

APP_NAME = "PrimeStudio"  # the executable and the one-folder directory under dist/
BUNDLE_NAME = "Prime Studio.app"  # macOS
BUNDLE_ID = "org.primestudio.PrimeStudio"
ASSETS_PACKAGE = "prime_assets"  # the name the installed wheel gives assets/ (see setup.py)

# Files never shipped from assets/ (build droppings).
_SKIP_PARTS = {"__pycache__", ".DS_Store"}
_SKIP_SUFFIXES = {".pyc", ".tmp"}

# Python packages the app never imports at run time: test and dev tools, other GUI toolkits,
# notebooks and plotting. (sympy and mpmath stay: torch's optimisers import torch._dynamo,
# which imports sympy, when the studio trains.)
EXCLUDED_MODULES = [
    "tkinter",
    "_tkinter",
    "turtle",
    "turtledemo",
    "idlelib",
    "matplotlib",
    "IPython",
    "ipykernel",
    "jupyter_client",
    "jupyter_core",
    "notebook",
    "jedi",
    "parso",
    "pytest",
    "_pytest",
    "pytestqt",
    "pytest_qt",
    "pytest_timeout",
    "pytest_benchmark",
    "hypothesis",
    "ruff",
    "sklearn",
    "scipy",
    "pandas",
    "PyInstaller",
    "setuptools",
    "pkg_resources",
    "cryptography",
    "charset_normalizer",
    "requests",
    "urllib3",
    "torch.utils.tensorboard",
    "tensorboard",
    "torchvision",
    "torchaudio",
    "triton",
]

# Qt for Python modules the studio does not import. PySide6-Essentials only ships a subset;
# naming the big ones also guards against a full ``PySide6`` (Addons) install leaking them in.
EXCLUDED_QT_MODULES = [
    "PySide6.QtWebEngineCore",
    "PySide6.QtWebEngineWidgets",
    "PySide6.QtWebEngineQuick",
    "PySide6.QtWebChannel",
    "PySide6.QtWebSockets",
    "PySide6.Qt3DCore",
    "PySide6.Qt3DRender",
    "PySide6.Qt3DInput",
    "PySide6.Qt3DLogic",
    "PySide6.Qt3DAnimation",
    "PySide6.Qt3DExtras",
    "PySide6.QtQml",
    "PySide6.QtQuick",
    "PySide6.QtQuick3D",
    "PySide6.QtQuickControls2",
    "PySide6.QtQuickWidgets",
    "PySide6.QtCharts",
    "PySide6.QtDataVisualization",
    "PySide6.QtGraphs",
    "PySide6.QtMultimedia",
    "PySide6.QtMultimediaWidgets",
    "PySide6.QtPdf",
    "PySide6.QtPdfWidgets",
    "PySide6.QtDesigner",
    "PySide6.QtHelp",
    "PySide6.QtSql",
    "PySide6.QtTest",
    "PySide6.QtUiTools",
    "PySide6.QtXml",
    "PySide6.QtOpenGL",
    "PySide6.QtOpenGLWidgets",
    "PySide6.QtPrintSupport",
    "PySide6.QtConcurrent",
    "PySide6.QtStateMachine",
    "PySide6.QtBluetooth",
    "PySide6.QtPositioning",
    "PySide6.QtSerialPort",
    "PySide6.QtNetwork",
]

# Qt for Python modules the app needs beyond what its imports show: QtSvg renders the SVG window
# icon (through the iconengines/imageformats plugins, which PyInstaller ships only with QtSvg).
QT_HIDDEN_IMPORTS = ["PySide6.QtSvg"]

# Files a running app never reads, by their path in the bundle ('/'-separated): torch's C++
# headers, CMake files, its C++ test programs and test libraries (torch/test, torch/bin: about
# 130 MB; torch_shm_manager stays for torch.multiprocessing), Qt's translations (the studio is in
# English and installs no translator) and the GTK platform theme (its GTK libraries are not
# bundled, so it could only load a mismatched system GTK; Fusion is used on every platform).
DROP_PREFIXES = (
    "torch/include/",
    "torch/share/cmake/",
    "torch/test/",
    "PySide6/Qt/translations/",
    "PySide6/Qt/plugins/platformthemes/libqgtk3",
)
DROP_SUFFIXES = (".a", ".h", ".hpp", ".cuh", ".cpp", ".pyi")
# System libraries that PyInstaller pulls in only for the GTK platform theme dropped above (a
# readelf NEEDED closure over the rest of the bundle reaches none of them). Top-level files only.
GTK_ONLY_LIBS = (
    "libatk-1.0.",
    "libcairo.",
    "libcairo-gobject.",
    "libgdk_pixbuf-2.0.",
    "libpango-1.0.",
    "libpangocairo-1.0.",
    "libpangoft2-1.0.",
    "libpixman-1.",
    "libfribidi.",
    "libthai.",
    "libdatrie.",
    "libgraphite2.",
    "libharfbuzz.",
    "libgmodule-2.0.",
    "libgio-2.0.",
    "libgobject-2.0.",
    "libmount.",
    "libblkid.",
    "libselinux.",
    "libbsd.",
    "libmd.",
    "libXrender.",
    "libXext.",
    # GTK 3 itself and its accessibility and GL helpers: only the dropped theme plugin loads them
    # (ldd of every program, Python extension and Qt plugin of the bundle reaches none of them).
    "libgtk-3.",
    "libgdk-3.",
    "libatk-bridge-2.0.",
    "libatspi.",
    "libepoxy.",
)
# Linux: the shared libraries and programs that ship with their symbol tables (the dynamic symbols
# stay). Stripping everything (PyInstaller's strip=True) breaks the auditwheel-patched libraries of
# numpy and Pillow ("ELF load command address/offset not page-aligned"), so only these are
# stripped: torch, libpython and its extension modules, ICU, and the small extensions of
# safetensors, tokenizers, MarkupSafe and PyYAML (measured: the app generates and its self-test
# passes).
STRIP_ON_LINUX = (
    "torch/lib/libtorch_cpu.so",
    "torch/lib/libtorch_python.so",
    "torch/lib/libc10.so",
    "torch/lib/libtorch.so",
    "torch/lib/libshm.so",
    "torch/lib/libtorch_global_deps.so",
    "torch/_C.*.so",
    "torch/bin/torch_shm_manager",
    "libpython3*.so*",
    "python3*/lib-dynload/*.so",
    "PySide6/Qt/lib/libicu*.so*",
    "safetensors/*.so",
    "tokenizers/*.so",
    "markupsafe/*.so",
    "yaml/*.so",
)
TORCH_BIN_KEEP = ("torch/bin/torch_shm_manager",)
TORCH_TEST_LIBS = (
    "libjitbackend_test",
    "libbackend_with_compiler",
    "libaoti_custom_ops",
    "libtorchbind_test",
)


def source_modules(package: str, root: Path = ROOT) -> list[str]:
    """Every module of one of the project's packages, found by file name (nothing is imported).

    The spec lists them all as hidden imports: the studio imports optional panels
    (``studio.train.panel``) and engine helpers by name at run time, which PyInstaller's
    import scan cannot see. (PyInstaller's ``collect_submodules`` would import the studio in a
    child process, which is slow and, measured here, timed out and dropped modules.)
    """
    out = []
    for path in sorted((root / package).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(root).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def asset_datas(assets: Path = ASSETS) -> list[tuple[str, str]]:
    """``(source file, destination folder)`` pairs for every file under ``assets/``.

    Destinations are under :data:`ASSETS_PACKAGE`, mirroring a regular ``pip install .``, so the
    same lookup (``importlib.util.find_spec("prime_assets")``) finds them in the frozen app.
    """
    out = []
    for path in sorted(assets.rglob("*")):
        rel = path.relative_to(assets)
        if not path.is_file() or _SKIP_PARTS.intersection(rel.parts) or path.suffix in _SKIP_SUFFIXES:
            continue
        out.append((str(path), str(Path(ASSETS_PACKAGE, *rel.parts[:-1]))))
    return out


def keep_file(dest: str) -> bool:
    """False for files of the bundle that a running app never reads (see ``DROP_PREFIXES``).

    Args:
        dest: the file's path inside the bundle, as PyInstaller lists it (``torch/lib/x.so``).
    """
    dest = dest.replace("\\", "/")
    if dest.startswith(DROP_PREFIXES) or dest.endswith(DROP_SUFFIXES):
        return False
    if "/" not in dest and dest.startswith(GTK_ONLY_LIBS):
        return False
    if dest.startswith("torch/bin/"):
        return dest in TORCH_BIN_KEEP
    if dest.startswith("torch/lib/"):
        return not dest.rsplit("/", 1)[-1].startswith(TORCH_TEST_LIBS)
    return True


def icon_file(platform: str) -> Path | None:
    """The application icon for ``sys.platform``: .ico on Windows, .icns on macOS, PNG elsewhere."""
    if platform == "win32":
        return ICONS / "prime-studio.ico"
    if platform == "darwin":
        return ICONS / "prime-studio.icns"
    return ICONS / "prime-studio-256.png"


def write_linux_integration(app_dir: Path) -> list[Path]:
    """Put the desktop entry, the icons and ``install-desktop-entry.sh`` into the app folder.

    Layout (next to the ``PrimeStudio`` executable)::

        install-desktop-entry.sh
        share/applications/prime-studio.desktop
        share/icons/hicolor/{16x16,...,512x512}/apps/prime-studio.png, scalable/apps/prime-studio.svg

    Returns:
        The files written.
    """
    app_dir = Path(app_dir)
    share = app_dir / "share"
    copies = [(DESKTOP_FILE, share / "applications" / DESKTOP_FILE.name)]
    hicolor = share / "icons" / "hicolor"
    for size in HICOLOR_SIZES:
        target = hicolor / f"{size}x{size}" / "apps" / "prime-studio.png"
        copies.append((ICONS / f"prime-studio-{size}.png", target))
    copies.append((SVG_ICON, hicolor / "scalable" / "apps" / "prime-studio.svg"))
    copies.append((LINUX / "install-desktop-entry.sh", app_dir / "install-desktop-entry.sh"))
    for source, target in copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)  # keeps the script's executable bit
    return [target for _source, target in copies]


def strip_libraries(app_dir: Path) -> list[tuple[str, int, int]]:
    """Linux: ``strip --strip-unneeded`` the libraries in :data:`STRIP_ON_LINUX` inside the bundle.

    Returns:
        ``(path, bytes before, bytes after)`` for each stripped file; empty without ``strip``.
    """
    import subprocess

    tool = shutil.which("strip")
    internal = Path(app_dir) / "_internal"
    out = []
    for pattern in STRIP_ON_LINUX if tool is not None else ():
        for path in sorted(internal.glob(pattern)):
            if path.is_symlink() or not path.is_file():
                continue
            before = path.stat().st_size
            subprocess.run([tool, "--strip-unneeded", str(path)], check=True)
            out.append((path.relative_to(internal).as_posix(), before, path.stat().st_size))
    return out


def drop_build_search_paths(app_dir: Path) -> list[tuple[str, list[str]]]:
    """Linux: remove the build machine's absolute ``RUNPATH``/``RPATH`` folders from the bundle.

    ``$ORIGIN``-relative folders stay (Qt, numpy and Pillow need theirs); see ``packaging/elf.py``.

    Returns:
        ``(path in the bundle, folders removed)`` for each file changed.
    """
    import elf

    internal = Path(app_dir) / "_internal"
    out = []
    for path in sorted(internal.rglob("*.so*")) if internal.is_dir() else ():
        if path.is_symlink() or not path.is_file():
            continue
        removed = elf.drop_foreign_search_paths(path)
        if removed:
            out.append((path.relative_to(internal).as_posix(), removed))
    return out
