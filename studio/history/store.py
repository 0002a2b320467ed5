"""Outputs on disk: every result saved in the data folder with its full settings and steps.

One output is up to three files with one name: ``NAME.png`` (images; the settings as text chunks,
in the same scheme as ``prime generate``: ``prime-settings`` holds all of them as JSON, and model,
seed, steps, sampler settings and app version are also plain chunks) or ``NAME.txt`` (text),
``NAME.trajectory.safetensors`` (the whole denoising record: see ``engine.save_trajectory``) and
``NAME.png.json`` / ``NAME.txt.json`` (the settings again, written last: the output is complete
once it exists). :func:`write_output` writes them in that order and removes what it wrote if any
write fails (a full disk leaves nothing half-written); outputs saved before trajectories were
recorded have no trajectory file and restore their settings only. Deleted outputs move to
``.trash/`` in the same folder, from where :func:`restore` puts them back. Also exports PNG at a
chosen scale, animated GIF / WebP of the denoising and text; every write is atomic.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import stat
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from studio.enginelink import eng

SETTINGS_KEY = "prime-settings"
PLAIN_KEYS = (
    "model",
    "seed",
    "steps",
    "num_samples",
    "temperature",
    "top_k",
    "top_p",
    "reveal",
    "corrector",
    "app_version",
)


def timestamp() -> str:
    """A sortable, file-name-safe UTC timestamp."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S-%f")


def save_png(path: Path, rgb: np.ndarray, settings: dict[str, Any], scale: int = 1) -> Path:
    """Write uint8 (H, W, 3), ``scale`` times larger (crisp pixels), as PNG with the settings chunks."""
    info = PngImagePlugin.PngInfo()
    info.add_text(SETTINGS_KEY, json.dumps(settings, sort_keys=True, default=str))
    for key in PLAIN_KEYS:
        if key in settings and settings[key] is not None:
            info.add_text(key, str(settings[key]))
    info.add_text("Software", f"Prime Studio {settings.get('app_version', '')}".strip())
    image = eng.upscale(Image.fromarray(np.ascontiguousarray(rgb), "RGB"), max(1, int(scale)))
    with eng.atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return Path(path)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PNG_CHUNKS = 4096  # chunks looked at before giving up (text chunks come before the pixels)
MAX_TEXT_CHUNK = 1_000_000  # bytes of one text chunk, compressed or not
MAX_TEXT_TOTAL = 4_000_000  # bytes of all text, decompressed
SETTINGS_LIMITS: dict[str, tuple[type, float, float]] = {
    "num_samples": (int, 1, 4096),
    "steps": (int, 1, 100_000),
    "seed": (int, 0, 2**64),
    "top_k": (int, 0, 65536),
    "length": (int, 0, 262_144),
    "temperature": (float, 0.0, 1000.0),
    "temperature_end": (float, 0.0, 1000.0),
    "top_p": (float, 0.0, 1.0),
    "corrector": (float, 0.0, 1.0),
    "corrector_start": (float, 0.0, 1.0),
    "time_warp": (float, 0.0, 1000.0),
}
SETTINGS_TEXT = {"model": 512, "reveal": 32, "seed_mode": 16, "prefix": 1_000_000, "suffix": 1_000_000}


def _inflate(data: bytes, budget: int, what: str) -> bytes:
    """zlib-decompress at most ``budget`` bytes; a larger result is refused (a decompression bomb)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, budget)
    except zlib.error as exc:
        raise ValueError(f"{what}: a damaged compressed text chunk ({exc})") from None
    if inflater.unconsumed_tail or not inflater.eof and len(out) >= budget:
        raise ValueError(f"{what}: a compressed text chunk expands beyond {budget:,} bytes; refusing it")
    return out


def read_png_text(path: str | Path) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG, read without decoding a single pixel.

    Bounded: only a regular file is opened (a FIFO or a device is refused before reading), the
    pixel data is skipped with seeks, at most :data:`MAX_PNG_CHUNKS` chunks are looked at, a text
    chunk may hold :data:`MAX_TEXT_CHUNK` bytes and all text together (decompressed)
    :data:`MAX_TEXT_TOTAL`. ValueError names the file for anything else.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError(f"{path}: not a regular file (a pipe, device or folder); not reading it")
        if handle.read(8) != PNG_SIGNATURE:
            raise ValueError(f"{path}: not a PNG file")
        text: dict[str, str] = {}
        total = 0
        for _ in range(MAX_PNG_CHUNKS):
            head = handle.read(8)
            if len(head) < 8:
                break  # truncated: keep what was read
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IEND":
                break
            if kind not in (b"tEXt", b"zTXt", b"iTXt"):
                handle.seek(length + 4, os.SEEK_CUR)  # skip the data (pixels too) and the CRC
                continue
            if length > MAX_TEXT_CHUNK:
                raise ValueError(
                    f"{path}: a {length:,}-byte text chunk (at most {MAX_TEXT_CHUNK:,}); refusing it"
                )
            data = handle.read(length)
            handle.seek(4, os.SEEK_CUR)
            key, _, body = data.partition(b"\0")
            budget = MAX_TEXT_TOTAL - total
            if kind == b"tEXt":
                value = body.decode("latin-1")
            elif kind == b"zTXt":
                value = _inflate(body[1:], budget, str(path)).decode("latin-1")
            else:
                compressed, rest = body[:1] == b"\1", body[2:]
                _, _, rest = rest.partition(b"\0")  # language tag
                _, _, rest = rest.partition(b"\0")  # translated keyword
                raw = _inflate(rest, budget, str(path)) if compressed else rest
                value = raw.decode("utf-8", errors="replace")
            total += len(value)
            if total > MAX_TEXT_TOTAL:
                raise ValueError(f"{path}: more than {MAX_TEXT_TOTAL:,} bytes of text chunks; refusing it")
            text[key.decode("latin-1")] = value
    return text


def _checked(key: str, value: Any) -> Any:
    """A setting's value, checked (type and range); ValueError naming it otherwise."""
    if key in SETTINGS_LIMITS:
        kind, low, high = SETTINGS_LIMITS[key]
        if isinstance(value, str):
            try:
                value = int(value) if kind is int else float(value)
            except ValueError:
                raise ValueError(f"{key} = {value[:40]!r} is not a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number, got {type(value).__name__}")
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"{key} = {value:.6g} is outside {low:g}..{high:g}")
        if kind is int:
            if float(value) != int(value):
                raise ValueError(f"{key} = {value} is not a whole number")
            return int(value)
        return float(value)
    if key in SETTINGS_TEXT:
        if not isinstance(value, str) or len(value) > SETTINGS_TEXT[key]:
            raise ValueError(f"{key} must be a string of at most {SETTINGS_TEXT[key]:,} characters")
    return value


def validate_settings(values: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Every generation setting checked before any is applied; ValueError naming the first bad one."""
    out = {}
    for key, value in values.items():
        if value is None:
            out[key] = None
            continue
        try:
            out[key] = _checked(str(key), value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}; no setting was applied" if where else str(exc)) from None
    return out


def is_library_name(name: Any) -> bool:
    """``name`` is a plain library model name (never a path: a PNG must not point at files)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 200
        and not name.startswith(".")
        and not name.endswith(".safetensors")
        and not any(ch in name for ch in '/\\:*?"<>|\0')
        and name.isprintable()
    )


def read_png_settings(path: str | Path) -> dict[str, Any]:
    """The settings a studio (or ``prime generate``) PNG carries, every value checked.

    Reads only the text chunks (:func:`read_png_text`); the ``prime-settings`` JSON is size- and
    depth-limited and must be an object (else the plain chunks are used). ValueError names the
    file: not a PNG, no settings, or a value out of range (then nothing should be applied).
    """
    text = read_png_text(path)
    for key in (SETTINGS_KEY, "prime:settings"):
        if key in text:
            try:
                parsed = eng.parse_json(text[key], f"{path}: {key}")
            except ValueError:
                continue
            if isinstance(parsed, dict):
                return validate_settings({str(k): v for k, v in parsed.items()}, str(path))
    plain = {k: v for k, v in text.items() if k in PLAIN_KEYS}
    if not plain:
        raise ValueError(f"{path}: this PNG carries no Prime Studio settings")
    out: dict[str, Any] = {}
    for key, value in plain.items():
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except (ValueError, OverflowError):
                continue
        else:
            out[key] = value
    return validate_settings(out, str(path))


def save_animation(
    path: Path, frames: list[np.ndarray], fps: float = 12.0, scale: int = 1, kind: str | None = None
) -> Path:
    """An animated GIF or WebP (by ``kind`` or the suffix) of uint8 (H, W, 3) frames, atomically.

    Frames are enlarged ``scale`` times (nearest neighbour); the final frame is held 1.5 s.
    """
    images = [
        eng.upscale(Image.fromarray(np.ascontiguousarray(f), "RGB"), max(1, int(scale))) for f in frames
    ]
    return eng.save_animation(path, images, fps=fps, kind=kind)


def save_gif(path: Path, frames: list[np.ndarray], duration_ms: int = 60, scale: int = 1) -> Path:
    """An animated GIF of uint8 (H, W, 3) frames shown ``duration_ms`` each (see :func:`save_animation`)."""
    return save_animation(path, frames, fps=1000 / max(10, duration_ms), scale=scale, kind="gif")


def join_texts(texts: list[str]) -> str:
    """Samples of a text output, separated by a ruled line (as saved and exported)."""
    return ("\n\n" + "-" * 40 + "\n\n").join(texts)


def save_text(path: Path, texts: list[str], settings: dict[str, Any]) -> Path:
    """Samples as a text file, settings as a JSON sidecar next to it (both atomic)."""
    eng.write_text(path, join_texts(texts))
    sidecar(path, settings)
    return Path(path)


def sidecar(path: Path, settings: dict[str, Any]) -> Path:
    """Write ``<path>.json`` with the settings (atomically)."""
    out = path.with_name(path.name + ".json")
    eng.write_text(out, json.dumps(settings, indent=2, sort_keys=True, default=str))
    return out


def frame_steps(steps: int, max_frames: int = 64) -> list[int]:
    """Which steps (0..steps) to show in an animation of at most ``max_frames`` frames."""
    if steps + 1 <= max_frames:
        return list(range(steps + 1))
    picks = np.linspace(0, steps, max_frames).round().astype(int)
    return sorted(set(int(k) for k in picks))


# --------------------------------------------------------------------------- saved outputs

TRAJECTORY_SUFFIX = ".trajectory.safetensors"
TRASH = ".trash"
MAIN_SUFFIXES = (".png", ".txt")


@dataclass(frozen=True)
class SavedOutput:
    """The files of one saved output, named after its main file (``NAME.png`` or ``NAME.txt``)."""

    main: Path

    @property
    def name(self) -> str:
        """The output's name (its file name without the suffix): unique in the folder."""
        return self.main.stem

    @property
    def sidecar(self) -> Path:
        """``NAME.png.json`` / ``NAME.txt.json``: the settings."""
        return self.main.with_name(self.main.name + ".json")

    @property
    def trajectory(self) -> Path:
        """``NAME.trajectory.safetensors``: the recorded steps (absent for older outputs)."""
        return self.main.with_name(self.name + TRAJECTORY_SUFFIX)

    @property
    def has_steps(self) -> bool:
        """True when the denoising was recorded (the output can be scrubbed and branched)."""
        return self.trajectory.is_file()

    @property
    def is_image(self) -> bool:
        """True for an image output (a PNG)."""
        return self.main.suffix == ".png"

    def files(self) -> list[Path]:
        """The files of this output that exist."""
        return [p for p in (self.trajectory, self.main, self.sidecar) if p.exists()]

    def settings(self) -> dict[str, Any]:
        """The settings from the sidecar ({} when it is missing or unreadable)."""
        try:
            if not self.sidecar.is_file():  # a FIFO or a device is never opened
                return {}
            value = eng.parse_json(self.sidecar.read_text(encoding="utf-8"), str(self.sidecar))
        except (OSError, ValueError):  # parse_json is bounded: no RecursionError
            return {}
        return dict(value) if isinstance(value, dict) else {}


def list_outputs(folder: Path) -> list[SavedOutput]:
    """Outputs saved in ``folder``, newest first (names start with a UTC timestamp)."""
    try:
        files = [p for p in folder.iterdir() if p.suffix in MAIN_SUFFIXES and p.is_file()]
    except OSError:
        return []
    return [SavedOutput(p) for p in sorted(files, reverse=True)]


def write_output(
    folder: Path,
    name: str,
    suffix: str,
    write_main: Callable[[Path], Path],
    trajectory: Any,
    record: dict[str, Any],
    settings: dict[str, Any],
) -> SavedOutput:
    """Save one output: trajectory, then the main file (``write_main(path)``), then the sidecar.

    ``record`` goes into the trajectory file (settings, model config, request); ``settings`` into
    the sidecar. If any write fails (e.g. ``eng.DiskFullError``) the files already written for this
    output are removed and the error is raised: no output is ever half saved.
    """
    out = SavedOutput(folder / f"{name}{suffix}")
    written: list[Path] = []
    try:
        if trajectory is not None:
            written.append(eng.save_trajectory(out.trajectory, trajectory, record))
        written.append(write_main(out.main))
        written.append(sidecar(out.main, dict(settings, trajectory_file=out.trajectory.name)))
    except BaseException:
        for path in written:
            try:
                path.unlink()
            except OSError:
                pass
        raise
    return out


def trash(output: SavedOutput) -> list[tuple[Path, Path]]:
    """Move an output's files to ``.trash/`` beside them; returns the moves (for :func:`restore`)."""
    bin_dir = output.main.parent / TRASH
    bin_dir.mkdir(exist_ok=True)
    moves: list[tuple[Path, Path]] = []
    try:
        for path in output.files():
            target = bin_dir / path.name
            os.replace(path, target)
            moves.append((path, target))
    except OSError:
        restore(moves)
        raise
    return moves


def restore(moves: list[tuple[Path, Path]]) -> None:
    """Undo :func:`trash`: put the files back where they were."""
    for original, moved in reversed(moves):
        os.replace(moved, original)
