"""The PyInstaller spec carries every file the app loads at run time (fast: no PyInstaller needed).

The spec is executed with PyInstaller's build steps replaced by recorders, so what is checked is
the spec itself: its data list after its own filters, its hidden imports and exclusions. What the
app loads is derived from the code: ``asset_path(...)`` calls in ``studio/``, the package name
that ``studio.app.asset_path`` and ``engine.files.library.bundled_models_dir`` look up, the models in
``bundled_models_dir()``, the optional panels and engine fallbacks imported by name.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
SPEC = PACKAGING / "prime_studio.spec"


@pytest.fixture()
def manifest(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(PACKAGING))
    for name in ("manifest", "icons"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import manifest as module

    return module


class _Recorder:
    calls: dict[str, tuple[tuple, dict]]

    def __init__(self, *args, **kwargs) -> None:
        type(self).calls[type(self).__name__] = (args, kwargs)


def _run_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, platform: str = sys.platform) -> dict:
    """Execute the spec with recording stand-ins for Analysis, PYZ, EXE, COLLECT and BUNDLE."""
    calls: dict[str, tuple[tuple, dict]] = {}

    class Analysis(_Recorder):
        def __init__(self, scripts, **kwargs) -> None:
            super().__init__(scripts, **kwargs)
            # PyInstaller turns (source, destination folder) into (destination name, source, kind).
            self.datas = [(str(Path(dest, Path(src).name)), src, "DATA") for src, dest in kwargs["datas"]]
            self.binaries = [("torch/lib/libtorch_cpu.so", "/x/libtorch_cpu.so", "BINARY")]
            self.pure, self.scripts = [], scripts

    namespace: dict[str, object] = {"SPECPATH": str(PACKAGING), "DISTPATH": str(tmp_path / "dist")}
    for name in ("PYZ", "EXE", "COLLECT", "BUNDLE"):
        namespace[name] = type(name, (_Recorder,), {})
    namespace["Analysis"] = Analysis
    for cls in [Analysis, *(namespace[n] for n in ("PYZ", "EXE", "COLLECT", "BUNDLE"))]:
        cls.calls = calls  # type: ignore[attr-defined]

    hooks = types.ModuleType("PyInstaller.utils.hooks")

    def copy_metadata(name: str) -> list:
        raise RuntimeError(f"{name} metadata not looked up in this test")

    hooks.copy_metadata = copy_metadata  # type: ignore[attr-defined]
    for name, module in {
        "PyInstaller": types.ModuleType("PyInstaller"),
        "PyInstaller.utils": types.ModuleType("PyInstaller.utils"),
        "PyInstaller.utils.hooks": hooks,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the spec puts packaging/ on it
    for name in ("manifest", "icons"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    exec(compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec"), namespace)
    namespace["calls"] = calls
    return namespace


def _literal_calls(folder: Path, function: str) -> list[tuple[str, ...]]:
    """The all-literal string arguments of every ``function(...)`` call in the .py files under folder."""
    out = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name != function:
                continue
            args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if len(args) == len(node.args) and args:
                out.append(tuple(args))
    return out


def _runtime_assets() -> list[Path]:
    """Files under assets/ that the app opens: studio asset_path(...) calls and the bundled models."""
    from engine.files.library import bundled_models_dir

    used = [Path(*parts) for parts in _literal_calls(ROOT / "studio", "asset_path")]
    assert Path("icons", "prime-studio.svg") in used and Path("styles", "studio.qss") in used, used
    models = bundled_models_dir()
    # The models folder as the app finds it, relative to the assets root it found it in.
    rel_models = Path("models") if models.name == "models" else None
    assert rel_models is not None, models
    used += [rel_models / p.name for p in sorted(models.iterdir()) if p.is_file()]
    for rel in used:
        assert (ROOT / "assets" / rel).is_file(), f"the app loads assets/{rel}, which does not exist"
    return used


def test_spec_ships_every_asset_the_app_loads(tmp_path, monkeypatch) -> None:
    spec = _run_spec(tmp_path, monkeypatch)
    analysis = spec["a"]
    shipped = {dest.replace("\\", "/"): src for dest, src, _kind in analysis.datas}
    # The frozen app finds its assets the way an installed one does: the package name it looks up.
    studio_lookups = {args[0] for args in _literal_calls(ROOT / "studio", "find_spec")}
    engine_lookups = {args[0] for args in _literal_calls(ROOT / "engine", "find_spec")}
    # (studio.qtlibs also looks up PySide6 to find its xcb plugin: a library, not an asset)
    assert studio_lookups - {"PySide6"} == {"prime_assets"} and "prime_assets" in engine_lookups
    for rel in _runtime_assets():
        dest = f"prime_assets/{rel.as_posix()}"
        assert dest in shipped, f"{dest} (loaded at run time) is not in the spec's data"
        assert Path(shipped[dest]) == ROOT / "assets" / rel
    # Everything else in assets/ goes too (model cards, the desktop file), minus build droppings.
    on_disk = {
        f"prime_assets/{p.relative_to(ROOT / 'assets').as_posix()}"
        for p in (ROOT / "assets").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert on_disk <= set(shipped)


def test_spec_entry_point_hidden_imports_and_exclusions(tmp_path, monkeypatch) -> None:
    spec = _run_spec(tmp_path, monkeypatch)
    args, kwargs = spec["calls"]["Analysis"]
    assert [Path(s) for s in args[0]] == [PACKAGING / "launcher.py"]
    launcher = ast.parse((PACKAGING / "launcher.py").read_text(encoding="utf-8"))
    imports = [
        (n.module, [a.name for a in n.names]) for n in ast.walk(launcher) if isinstance(n, ast.ImportFrom)
    ]
    assert ("studio.app", ["main"]) in imports  # the same entry as the prime-studio script
    assert 'prime-studio = "studio.app:main"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")

    hidden = set(kwargs["hiddenimports"])
    from studio import panels

    # Modules imported by name at run time: optional panels and import_module("...") literals.
    by_name = set(panels.OPTIONAL_PANELS)
    for folder in ("engine", "studio"):
        by_name |= {args[0] for args in _literal_calls(ROOT / folder, "import_module")}
    present = {name for name in by_name if (ROOT / Path(*name.split("."))).with_suffix(".py").is_file()}
    assert present <= hidden, present - hidden
    # ...and, simply, every module of the two packages.
    every = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for folder in ("engine", "studio")
        for p in (ROOT / folder).rglob("*.py")
    }
    assert every <= hidden, every - hidden
    assert "PySide6.QtSvg" in hidden  # the window icon is an SVG

    excluded = set(kwargs["excludes"])
    for forbidden in ("pytest", "hypothesis", "ruff", "sklearn", "IPython", "tkinter", "matplotlib"):
        assert forbidden in excluded
    assert {"PySide6.QtWebEngineCore", "PySide6.Qt3DCore", "PySide6.QtQuick", "PySide6.QtQml"} <= excluded
    # ...but nothing the app imports.
    imported = set()
    for folder in ("engine", "studio"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    imported |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module)
    needed = {name for name in imported if not name.startswith(("engine", "studio"))}
    clash = {n for n in needed for x in excluded if n == x or n.startswith(x + ".")}
    # sklearn is the training recipes' optional data source, not used by the studio.
    assert clash <= {"sklearn.datasets"}, clash
    assert {"sympy", "torch", "numpy", "qasync", "safetensors", "PIL"}.isdisjoint(excluded)


def test_spec_filters_drop_only_unused_files(manifest) -> None:
    keep = manifest.keep_file
    for dropped in (
        "torch/include/ATen/ATen.h",
        "torch/test/atest",
        "torch/bin/test_api",
        "torch/bin/protoc",
        "torch/lib/libtorchbind_test.so",
        "torch/share/cmake/Torch/TorchConfig.cmake",
        "PySide6/Qt/translations/qtbase_de.qm",
        "PySide6/Qt/plugins/platformthemes/libqgtk3.so",
        "libcairo.so.2",
        "libgdk_pixbuf-2.0.so.0",
    ):
        assert not keep(dropped), dropped
    for kept in (
        "torch/lib/libtorch_cpu.so",
        "torch/lib/libc10.so",
        "torch/lib/libgomp.so.1",
        "torch/bin/torch_shm_manager",
        "PySide6/Qt/plugins/platforms/libqxcb.so",
        "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "PySide6/Qt/plugins/imageformats/libqsvg.so",
        "PySide6/Qt/plugins/iconengines/libqsvgicon.so",
        "prime_assets/models/digits.safetensors",
        "prime_assets/icons/prime-studio.svg",
        "libpython3.11.so.1.0",
        "libQt6Gui.so.6",
        "libglib-2.0.so.0",
        "PySide6/Qt/plugins/platformthemes/libqxdgdesktopportal.so",
    ):
        assert keep(kept), kept


def test_models_present_at_build_time_are_picked_up(tmp_path, manifest) -> None:
    assets = tmp_path / "assets"
    for rel in ("models/a.safetensors", "models/a.card.json", "icons/x.svg", "models/__pycache__/y.pyc"):
        (assets / rel).parent.mkdir(parents=True, exist_ok=True)
        (assets / rel).write_bytes(b"x")
    got = {(Path(src).relative_to(assets).as_posix(), dest) for src, dest in manifest.asset_datas(assets)}
    assert got == {
        ("models/a.safetensors", str(Path("prime_assets/models"))),
        ("models/a.card.json", str(Path("prime_assets/models"))),
        ("icons/x.svg", str(Path("prime_assets/icons"))),
    }


@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_windows_and_macos_icons_and_bundle(tmp_path, monkeypatch, platform) -> None:
    spec = _run_spec(tmp_path, monkeypatch, platform)
    _args, exe = spec["calls"]["EXE"]
    icon = {"win32": "prime-studio.ico", "darwin": "prime-studio.icns"}[platform]
    assert Path(exe["icon"]) == PACKAGING / "icons" / icon and Path(exe["icon"]).is_file()
    assert exe["console"] is False and exe["strip"] is False
    if platform == "darwin":
        _args, bundle = spec["calls"]["BUNDLE"]
        assert bundle["name"].endswith(".app") and bundle["bundle_identifier"]
        assert Path(bundle["icon"]).is_file()
    else:
        assert "BUNDLE" not in spec["calls"]


def test_icons_are_current_and_hold_the_needed_sizes(manifest) -> None:
    import icons
    from PIL import Image

    assert icons.is_current(), "assets/icons/prime-studio.svg changed: run python packaging/icons.py"
    with Image.open(icons.OUT / "prime-studio.ico") as ico:
        assert (256, 256) in ico.info["sizes"] and (16, 16) in ico.info["sizes"]
    with Image.open(icons.OUT / "prime-studio.icns") as icns:
        assert (512, 512, 2) in icns.info["sizes"]  # the 1024 px Retina icon
    for size in icons.PNG_SIZES:
        with Image.open(icons.OUT / f"prime-studio-{size}.png") as png:
            assert png.size == (size, size) and png.mode == "RGBA"


@pytest.mark.skipif(sys.platform == "win32" or shutil.which("awk") is None, reason="POSIX shell script")
def test_linux_desktop_entry_installs_and_uninstalls(tmp_path, monkeypatch) -> None:
    spec = _run_spec(tmp_path, monkeypatch, "linux")  # writes share/ and the script into the app folder
    assert "BUNDLE" not in spec["calls"]
    built = tmp_path / "dist" / "PrimeStudio"
    app = tmp_path / "my apps 100%" / "PrimeStudio"  # a path with a space and a percent sign
    shutil.copytree(built, app)
    exe = app / "PrimeStudio"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    data = tmp_path / "data"
    env = dict(os.environ, XDG_DATA_HOME=str(data), PATH=os.environ.get("PATH", ""))
    script = app / "install-desktop-entry.sh"
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    entry = (data / "applications" / "prime-studio.desktop").read_text(encoding="utf-8")
    lines = entry.splitlines()
    quoted = str(exe).replace("%", "%%")
    assert f'Exec="{quoted}" %F' in lines and f"TryExec={exe}" in lines
    assert "Icon=prime-studio" in lines and "StartupWMClass=PrimeStudio" in lines
    assert lines[0] == "[Desktop Entry]" and "Type=Application" in lines
    for size in (16, 48, 256, 512):
        assert (data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "prime-studio.png").is_file()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "prime-studio.svg").is_file()

    gone = subprocess.run([str(script), "--uninstall"], env=env, capture_output=True, text=True, check=False)
    assert gone.returncode == 0, gone.stderr
    assert not (data / "applications" / "prime-studio.desktop").exists()
    assert not list((data / "icons").rglob("prime-studio.*"))

    exe.unlink()
    missing = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=False)
    assert missing.returncode == 2 and "not found" in missing.stderr
