"""Where models live: bundled ones shipped in ``assets/models``, the user's in the platform data dir.

A model's library name is its file name without ``.safetensors``. Bundled models are read-only;
user models are imported (validated, then copied) into :func:`user_models_dir` and can be removed.
Set ``PRIME_STUDIO_HOME`` to move the user data folder (tests do).
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.files.atomic import atomic_path, fsync_dir
from engine.files.modelfile import (
    MODEL_SUFFIX,
    ModelFileError,
    ModelInfo,
    load_model,
    read_model_info,
)

APP_DIR_NAME = "Prime Studio"
HOME_ENV = "PRIME_STUDIO_HOME"


def data_dir() -> Path:
    """The user data folder (not created here).

    ``$PRIME_STUDIO_HOME`` if set; else ``$XDG_DATA_HOME/prime-studio`` (default
    ``~/.local/share/prime-studio``) on Linux, ``~/Library/Application Support/Prime Studio`` on
    macOS and ``%APPDATA%/Prime Studio`` on Windows.
    """
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        return (Path(appdata) if appdata else home / "AppData" / "Roaming") / APP_DIR_NAME
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / APP_DIR_NAME
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else home / ".local" / "share") / "prime-studio"


def user_models_dir() -> Path:
    """Folder of the user's models (``data_dir()/models``), created on first use."""
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def bundled_models_dir() -> Path:
    """Folder of the models shipped with the app (``assets/models``).

    Found through the ``prime_assets`` package of an installed copy, else in the source tree.
    """
    # assets/ has no __init__.py: prime_assets is a namespace package, so ask for its locations
    # rather than importlib.resources.files (which returns a MultiplexedPath for those).
    try:
        spec = importlib.util.find_spec("prime_assets")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "models"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[2] / "assets" / "models"


@dataclass(frozen=True)
class ModelEntry:
    """One model in the library: valid (``info`` set) or broken (``error`` set)."""

    name: str
    path: Path
    bundled: bool
    info: ModelInfo | None
    error: str | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (used by ``prime models --json``)."""
        out: dict[str, object] = {
            "name": self.name,
            "path": str(self.path),
            "bundled": self.bundled,
            "error": self.error,
        }
        if self.info is not None:
            cfg = self.info.config
            out.update(
                modality=cfg.modality,
                num_classes=cfg.num_classes,
                ell=cfg.ell,
                seq_length=cfg.seq_length,
                num_parameters=self.info.num_parameters,
                file_size=self.info.file_size,
            )
        return out


def _model_name(path: Path) -> str:
    return path.name[: -len(MODEL_SUFFIX)]


def _entries(folder: Path, bundled: bool) -> list[ModelEntry]:
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob(f"*{MODEL_SUFFIX}")):
        try:
            info, error = read_model_info(path), None
        except ModelFileError as exc:
            info, error = None, str(exc)
        except OSError as exc:  # e.g. permission denied
            info, error = None, f"{path}: {exc.strerror or exc}"
        except Exception as exc:  # noqa: BLE001 - one bad file must never hide the others
            info, error = None, f"{path}: unreadable model file ({type(exc).__name__}: {exc})"
        out.append(ModelEntry(_model_name(path), path, bundled, info, error))
    return out


def list_models() -> list[ModelEntry]:
    """Bundled models, then user models, each sorted by name. Broken files are listed with their error."""
    return _entries(bundled_models_dir(), True) + _entries(user_models_dir(), False)


def _available_names() -> list[str]:
    return [entry.name for entry in list_models()]


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """Turn a library name or a file path into the path of a model file.

    An existing file path wins; otherwise the name is looked up among the user's models, then the
    bundled ones.

    Raises:
        ValueError: nothing by that name; the message lists the available names.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    looks_like_path = path.suffix == MODEL_SUFFIX or os.sep in text or (os.altsep and os.altsep in text)
    if not looks_like_path and text:
        for folder in (user_models_dir(), bundled_models_dir()):
            candidate = folder / f"{text}{MODEL_SUFFIX}"
            if candidate.is_file():
                return candidate
    names = _available_names()
    available = ", ".join(names) if names else "none (use 'prime init' or import a model)"
    what = "no model file" if looks_like_path else "no model named"
    raise ValueError(f"{what} {text!r}; available models: {available}")


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or any(ch in name for ch in '/\\:*?"<>|'):
        raise ValueError(f"invalid model name {name!r}: use letters, digits, '-', '_' and '.'")


def import_model(path: str | os.PathLike[str], name: str | None = None) -> Path:
    """Validate a model file and copy it into the user library.

    Args:
        path: the model file.
        name: library name (default: the file name without ``.safetensors``).

    Returns:
        The path of the copy.

    Raises:
        ModelFileError: the file is not a valid model (it is loaded fully: weights are checked).
        ValueError: the name is taken by a bundled or user model.
    """
    source = Path(path).expanduser()
    load_model(source)  # full validation, weights included; raises ModelFileError
    if name is None:
        name = _model_name(source) if source.name.endswith(MODEL_SUFFIX) else source.stem
    _check_name(name)
    taken = {entry.name: entry for entry in list_models()}
    if name in taken:
        where = "a bundled model" if taken[name].bundled else "a model in your library"
        raise ValueError(f"cannot import {source}: the name {name!r} is already used by {where}")
    target = user_models_dir() / f"{name}{MODEL_SUFFIX}"
    with atomic_path(target, expected_size=source.stat().st_size) as tmp:
        shutil.copyfile(source, tmp)
    return target


def remove_model(name: str) -> Path:
    """Remove a user model from the library by moving it to the trash (see :func:`trash_model`).

    Nothing is deleted: :func:`restore_model` puts it back. Bundled models cannot be removed.

    Returns:
        The path of the model file in the trash.

    Raises:
        ValueError: unknown name, or the name is a bundled model.
    """
    return trash_model(name)


# --------------------------------------------------------------------------- trash

TRASH_DIR_NAME = "trash"


@dataclass(frozen=True)
class TrashEntry:
    """A model in the trash: its library name, where the file is now, and when it was removed."""

    name: str
    path: Path
    removed: str  # local time, "YYYY-MM-DD HH:MM:SS"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary (used by ``prime restore --json``)."""
        return {"name": self.name, "path": str(self.path), "removed": self.removed}


def trash_dir() -> Path:
    """Folder of removed models (``data_dir()/trash``): one sub-folder per removal, newest last."""
    return data_dir() / TRASH_DIR_NAME


def trash_model(name: str) -> Path:
    """Move a user model into the trash (same disk: an atomic rename); bundled models stay.

    Each removal gets its own folder ``trash/<time>/NAME.safetensors``, so removing a second
    model of the same name keeps the first one too.

    Returns:
        The path of the model file in the trash.

    Raises:
        ValueError: unknown name, or the name is a bundled model.
    """
    _check_name(name)
    source = user_models_dir() / f"{name}{MODEL_SUFFIX}"
    if not source.is_file():
        if (bundled_models_dir() / f"{name}{MODEL_SUFFIX}").is_file():
            raise ValueError(f"{name!r} is a bundled model and cannot be removed")
        user = [entry.name for entry in _entries(user_models_dir(), False)]
        raise ValueError(f"no user model named {name!r}; your models: {', '.join(user) if user else 'none'}")
    trash = trash_dir()
    trash.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in itertools.count():
        folder = trash / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            folder.mkdir()
            break
        except FileExistsError:
            continue
    target = folder / source.name
    os.replace(source, target)
    fsync_dir(source.parent)
    fsync_dir(folder)
    return target


def _removal_order(folder: Path) -> tuple[str, int]:
    n = folder.name[16:]  # "YYYYmmdd-HHMMSS" or "YYYYmmdd-HHMMSS-N" (several in one second)
    return (folder.name[:15], int(n) if n.isdigit() else 0)


def list_trash() -> list[TrashEntry]:
    """Models in the trash, newest removal first."""
    folder = trash_dir()
    if not folder.is_dir():
        return []
    out = []
    for sub in sorted((p for p in folder.iterdir() if p.is_dir()), key=_removal_order, reverse=True):
        try:
            removed = time.strftime("%Y-%m-%d %H:%M:%S", time.strptime(sub.name[:15], "%Y%m%d-%H%M%S"))
        except ValueError:  # a folder not made by trash_model: its time on disk
            removed = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sub.stat().st_mtime))
        for path in sorted(sub.glob(f"*{MODEL_SUFFIX}")):
            if not path.name.startswith("."):
                out.append(TrashEntry(_model_name(path), path, removed))
    return out


def restore_model(name: str) -> Path:
    """Move the most recently removed model called ``name`` back into the user library.

    Returns:
        The restored model's path in the library.

    Raises:
        ValueError: nothing by that name in the trash, or the name is used in the library now.
    """
    _check_name(name)
    entries = [entry for entry in list_trash() if entry.name == name]
    if not entries:
        names = sorted({entry.name for entry in list_trash()})
        listed = ", ".join(names) or "nothing"
        raise ValueError(f"no model named {name!r} in the trash; in the trash: {listed}")
    taken = {entry.name: entry for entry in list_models()}
    if name in taken:
        where = "a bundled model" if taken[name].bundled else "a model in your library"
        raise ValueError(
            f"cannot restore {name!r}: the name is used by {where} now; rename or remove that one first"
        )
    source = entries[0].path
    target = user_models_dir() / source.name
    os.replace(source, target)
    fsync_dir(target.parent)
    try:
        source.parent.rmdir()  # the removal's folder, empty now
    except OSError:
        pass
    return target
