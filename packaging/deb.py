"""Build the Debian package ``prime-studio_<version>_<arch>.deb`` from the one-folder app.

::

    python packaging/build.py              # the one-folder app: dist/PrimeStudio/
    python packaging/deb.py                # -> dist/prime-studio_0.1.0_amd64.deb (dpkg-deb only)
    sudo apt install ./dist/prime-studio_0.1.0_amd64.deb

Layout of the installed package (see docs/PACKAGING.md for why /opt):

- ``/opt/prime-studio/``: the PyInstaller folder as built (``PrimeStudio``, ``_internal/``), plus
  ``prime``, a link to ``PrimeStudio`` that starts the command-line interface;
- ``/usr/bin/prime-studio`` and ``/usr/bin/prime``: links into ``/opt/prime-studio``;
- ``/usr/share/applications/prime-studio.desktop`` and the icon in the hicolor theme (8 PNG sizes
  and the SVG); the menu and icon caches are refreshed by the triggers of ``desktop-file-utils``
  and ``hicolor-icon-theme``, so the package has no maintainer scripts;
- ``/usr/share/doc/prime-studio/{copyright,changelog.gz}``, ``/usr/share/man/man1/*.1.gz``,
  ``/usr/share/lintian/overrides/prime-studio``.

``Depends`` is computed from the built app (:func:`library_report`): ``ldd`` of every program,
Python extension and Qt plugin in the bundle, with the bundle's own library folders searched first,
gives the system libraries the app loads; ``dpkg -S`` names their packages and the packages'
``shlibs`` files give the minimum versions. A library that nothing in the bundle resolves is an
error (the package would install and then fail to start).
"""

from __future__ import annotations

import argparse
import email.utils
import gzip
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEBIAN = HERE / "debian"
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))

import manifest  # noqa: E402

from engine.files.atomic import atomic_path, write_bytes, write_text  # noqa: E402

PACKAGE = "prime-studio"
PREFIX = Path("/opt") / PACKAGE
LINKS = {"usr/bin/prime-studio": PREFIX / manifest.APP_NAME, "usr/bin/prime": PREFIX / "prime"}
CLI_LINK = "prime"  # in the app folder, next to PrimeStudio: packaging/launcher.py dispatches on it
# Of the one-folder app, left out of /opt: the per-user menu installer and its copies of the
# desktop entry and icons (the package installs the system-wide ones instead).
NOT_IN_OPT = ("install-desktop-entry.sh", "share")
SECTION = "science"
# Override with --maintainer or $DEBFULLNAME / $DEBEMAIL (as dch does).
MAINTAINER = "Prime Studio developers <packaging@prime-studio.invalid>"
SUMMARY = "desktop studio for discrete diffusion with partial masking"
DESCRIPTION = """\
Prime Studio generates images and text with discrete diffusion models that use
partial masking (Prime): each token is split into sub-tokens that are revealed
one at a time. The studio shows every denoising step, lets you scrub the
history, branch from any step, inpaint, infill text, compare models and train
small models on your own folders, all locally and offline.
.
This package holds the self-contained application (its own Python, PyTorch
(CPU) and Qt) under /opt/prime-studio, the prime-studio and prime commands,
a desktop menu entry and icons. Four small models (digits and King James Bible
text, Prime and masked-diffusion baselines) are bundled. User models and
settings live in the user's data folder and are kept on removal and upgrade."""

# Libraries of the bundle that read data files of the system, and the Debian packages of that data:
# fontconfig's configuration (whose package depends on a font), X11's locale and compose tables,
# and the keyboard layouts. Without them the app starts but draws no text or reads no keyboard.
DATA_DEPENDS = {
    "libfontconfig.so.1": "fontconfig-config",
    "libX11.so.6": "libx11-data",
    "libxkbcommon.so.0": "xkb-data",
}

LDD_TIMEOUT_S = 60  # per file; ldd of a plugin takes milliseconds
BUILD_TIMEOUT_S = 3600  # dpkg-deb with xz: 2 min on an idle 2-core machine, 10 on a loaded one
LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)")
SONAME = re.compile(r"^(?P<name>.+?)\.so\.(?P<version>[0-9][0-9.]*)$")
ELF_MAGIC = b"\x7fELF"
SHARED_LIBRARY = re.compile(r"\.so(\.[0-9.]+)?$|\.so\.[0-9]")


class DebError(RuntimeError):
    """The package cannot be built; the message says why and what to do."""


def project_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """``[project] version`` of pyproject.toml."""
    import tomllib

    with open(pyproject, "rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def debian_version(version: str) -> str:
    """A PEP 440 version as a Debian version that sorts the same way (``1.0rc1`` -> ``1.0~rc1``)."""
    if not re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version):
        raise DebError(f"version {version!r} cannot be a Debian version")
    version = version.replace("!", ":", 1)
    return re.sub(r"(?<=\d)\.?(a|b|rc|dev)(?=\d|$)", r"~\1", version)


def architecture() -> str:
    """This machine's Debian architecture (``amd64``); the bundle is built for it."""
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def is_elf(path: Path) -> bool:
    """True for an ELF file (program, shared library, Python extension)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == ELF_MAGIC
    except OSError:
        return False


def elf_roots(app_dir: Path) -> list[Path]:
    """The ELF files the app loads by path: its programs, Python extensions and Qt plugins.

    Plain shared libraries are not roots: they count only if a root needs them, so a library
    that PyInstaller collected but nothing loads adds no dependency.
    """
    internal = app_dir / "_internal"
    roots = [app_dir / manifest.APP_NAME]
    for path in sorted(internal.rglob("*")):
        if path.is_symlink() or not path.is_file() or not is_elf(path):
            continue
        rel = path.relative_to(internal).as_posix()
        extension = ".cpython-" in path.name or path.name.endswith(".abi3.so") or "/lib-dynload/" in rel
        program = not SHARED_LIBRARY.search(path.name)
        if extension or program or "/plugins/" in rel:
            roots.append(path)
    return roots


@dataclass
class LibraryReport:
    """What the bundle loads from the system, found with ``ldd`` (see :func:`library_report`)."""

    system: dict[str, set[str]] = field(default_factory=dict)  # system path -> roots that load it
    missing: dict[str, set[str]] = field(default_factory=dict)  # soname -> roots that cannot find it
    roots: int = 0


def library_report(app_dir: Path) -> LibraryReport:
    """``ldd`` of every root (:func:`elf_roots`), the bundle's library folders searched first."""
    app_dir = Path(app_dir).resolve()
    folders = sorted({str(p.parent) for p in app_dir.rglob("*.so*") if p.is_file()})
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(folders))
    report = LibraryReport()
    roots = elf_roots(app_dir)
    report.roots = len(roots)
    for root in roots:
        done = subprocess.run(
            ["ldd", str(root)], env=env, capture_output=True, text=True, check=False, timeout=LDD_TIMEOUT_S
        )
        rel = root.relative_to(app_dir).as_posix()
        for line in done.stdout.splitlines():
            match = LDD_LINE.match(line)
            if match is None:
                continue  # linux-vdso, the loader itself, "statically linked"
            soname, target = match.groups()
            if target == "not":
                report.missing.setdefault(soname, set()).add(rel)
            elif not Path(target).resolve().is_relative_to(app_dir):
                report.system.setdefault(target, set()).add(rel)
    return report


def owning_packages(paths: list[str]) -> dict[str, str]:
    """``{path: package}`` from ``dpkg -S``; a path is tried as given and resolved (merged /usr)."""
    candidates: dict[str, str] = {}
    for path in paths:
        real = os.path.realpath(path)
        for variant in (path, real, *(p.removeprefix("/usr") for p in (path, real) if p.startswith("/usr/"))):
            candidates.setdefault(variant, path)
    done = subprocess.run(
        ["dpkg", "-S", *candidates], capture_output=True, text=True, check=False, env=_c_locale(), timeout=300
    )
    owners: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if line.startswith("diversion by"):
            continue
        package, _, listed = line.partition(": ")
        original = candidates.get(listed.strip())
        if original is not None:
            owners.setdefault(original, package.split(",")[0].strip().split(":")[0])
    return owners


def _c_locale() -> dict[str, str]:
    return dict(os.environ, LC_ALL="C")


def shlibs_dependency(package: str, soname: str, info: Path = Path("/var/lib/dpkg/info")) -> str:
    """The dependency a library package declares for ``soname`` in its shlibs file.

    ``libxcb.so.1`` of ``libxcb1`` gives ``libxcb1 (>= 1.12)``; a package without a shlibs
    entry gives its bare name.
    """
    match = SONAME.match(soname)
    if match is not None:
        for shlibs in sorted(info.glob(f"{package}.shlibs")) + sorted(info.glob(f"{package}:*.shlibs")):
            for line in shlibs.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split(None, 2)
                if len(parts) == 3 and parts[0] == match["name"] and parts[1] == match["version"]:
                    return parts[2].split(",")[0].strip()
    return package


def _version_key(version: str) -> list[int | str]:
    return [int(p) if p.isdigit() else p for p in re.split(r"[.~+-]", version)]


def merge_dependencies(dependencies: list[str]) -> list[str]:
    """One entry per package, the highest ``>=`` minimum kept; sorted by package name."""
    best: dict[str, str | None] = {}
    for dep in dependencies:
        match = re.fullmatch(r"(\S+)(?:\s*\(>=\s*([^)]+)\))?", dep.strip())
        if match is None:
            raise DebError(f"unexpected dependency {dep!r}")
        name, minimum = match.groups()
        current = best.get(name)
        higher = minimum is not None and (current is None or _version_key(minimum) > _version_key(current))
        if name not in best or higher:
            best[name] = minimum
    return [f"{name} (>= {best[name]})" if best[name] else name for name in sorted(best)]


def depends(app_dir: Path) -> tuple[list[str], LibraryReport]:
    """The ``Depends`` list of the bundle in ``app_dir`` and the report it came from.

    Raises:
        DebError: a library the bundle needs is neither in it nor on this system, or belongs to
            no package (it would be missing on the users' machines).
    """
    report = library_report(app_dir)
    if report.missing:
        lines = [f"  {name} (needed by {', '.join(sorted(u)[:3])})" for name, u in report.missing.items()]
        raise DebError(
            "the bundle needs libraries that are neither in it nor on this system; install them "
            "and build again:\n" + "\n".join(sorted(lines))
        )
    owners = owning_packages(sorted(report.system))
    unowned = sorted(set(report.system) - set(owners))
    if unowned:
        raise DebError("no Debian package owns these libraries the bundle loads: " + ", ".join(unowned))
    deps = [shlibs_dependency(owners[path], Path(path).name) for path in report.system]
    deps += [pkg for lib, pkg in DATA_DEPENDS.items() if (Path(app_dir) / "_internal" / lib).exists()]
    return merge_dependencies(deps), report


def _mode(path: Path) -> int:
    """0755 for programs (ELF or #! scripts that were executable), 0644 for everything else."""
    was_executable = path.stat().st_mode & stat.S_IXUSR
    if not was_executable or SHARED_LIBRARY.search(path.name):
        return 0o644
    with open(path, "rb") as handle:
        head = handle.read(4)
    return 0o755 if head == ELF_MAGIC or head.startswith(b"#!") else 0o644


def _copy_app(app_dir: Path, target: Path) -> None:
    """Copy the app folder (links kept as links) with Debian's modes, and add the ``prime`` link."""
    top = os.path.abspath(app_dir)

    def ignore(folder: str, names: list[str]) -> set[str]:
        dropped = {n for n in names if n == "__pycache__" or n.endswith(".pyc")}
        return dropped | (set(NOT_IN_OPT) & set(names) if os.path.abspath(folder) == top else set())

    shutil.copytree(app_dir, target, symlinks=True, ignore=ignore)
    for dirpath, dirs, files in os.walk(target):
        for name in dirs:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in files:
            path = Path(dirpath, name)
            if not path.is_symlink():
                os.chmod(path, _mode(path))
    cli = target / CLI_LINK
    if not cli.is_symlink():
        cli.symlink_to(manifest.APP_NAME)


def _gzip(source: bytes, target: Path) -> None:
    """gzip -9n: no name, no time stamp (reproducible, as lintian asks)."""
    with atomic_path(target) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as out:
            out.write(source)


def changelog(version: str, maintainer: str, when: float) -> str:
    """A one-entry Debian changelog for this build."""
    date = email.utils.formatdate(when, localtime=False)
    return (
        f"{PACKAGE} ({version}) unstable; urgency=medium\n\n"
        f"  * Prime Studio {version}: the PyInstaller one-folder application, packaged.\n\n"
        f" -- {maintainer}  {date}\n"
    )


def stage(app_dir: Path, root: Path, version: str, maintainer: str, when: float) -> None:
    """Lay out the package's files under ``root`` (everything but DEBIAN/)."""
    _copy_app(app_dir, root / PREFIX.relative_to("/"))
    for link, target in LINKS.items():
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        (root / link).symlink_to(target)
    apps = root / "usr/share/applications"
    apps.mkdir(parents=True)
    shutil.copyfile(manifest.DESKTOP_FILE, apps / "prime-studio.desktop")
    hicolor = root / "usr/share/icons/hicolor"
    for size in manifest.HICOLOR_SIZES:
        (hicolor / f"{size}x{size}/apps").mkdir(parents=True)
        target = hicolor / f"{size}x{size}/apps/prime-studio.png"
        shutil.copyfile(manifest.ICONS / f"prime-studio-{size}.png", target)
    (hicolor / "scalable/apps").mkdir(parents=True)
    shutil.copyfile(manifest.SVG_ICON, hicolor / "scalable/apps/prime-studio.svg")
    doc = root / "usr/share/doc" / PACKAGE
    doc.mkdir(parents=True)
    shutil.copyfile(DEBIAN / "copyright", doc / "copyright")
    _gzip(changelog(version, maintainer, when).encode(), doc / "changelog.gz")
    man = root / "usr/share/man/man1"
    man.mkdir(parents=True)
    for page in ("prime-studio.1", "prime.1"):
        text = (DEBIAN / page).read_text(encoding="utf-8").replace("@VERSION@", version)
        _gzip(text.encode(), man / f"{page}.gz")
    overrides = root / "usr/share/lintian/overrides"
    overrides.mkdir(parents=True)
    shutil.copyfile(DEBIAN / "lintian-overrides", overrides / PACKAGE)
    for dirpath, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(dirpath, name), 0o755)
        if not Path(dirpath).is_relative_to(root / PREFIX.relative_to("/")):
            for name in files:
                if not os.path.islink(os.path.join(dirpath, name)):
                    os.chmod(os.path.join(dirpath, name), 0o644)


def installed_size_kib(root: Path) -> int:
    """``Installed-Size`` as dpkg-gencontrol counts it: KiB per file (rounded up), 1 per link."""
    total = 0
    for dirpath, dirs, files in os.walk(root):
        if "DEBIAN" in Path(dirpath).relative_to(root).parts[:1]:
            continue
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            total += 1 if os.path.islink(path) else -(-os.lstat(path).st_size // 1024)
    return total


def control(version: str, arch: str, maintainer: str, deps: list[str], size_kib: int) -> str:
    """The DEBIAN/control file."""
    return (
        f"Package: {PACKAGE}\n"
        f"Version: {version}\n"
        f"Architecture: {arch}\n"
        f"Maintainer: {maintainer}\n"
        f"Installed-Size: {size_kib}\n"
        f"Depends: {', '.join(deps)}\n"
        f"Recommends: hicolor-icon-theme, desktop-file-utils\n"
        f"Section: {SECTION}\n"
        "Priority: optional\n"
        f"Description: {SUMMARY}\n" + "".join(f" {line}\n" for line in DESCRIPTION.splitlines())
    )


def md5sums(root: Path) -> str:
    """DEBIAN/md5sums: every regular file outside DEBIAN/, as dpkg expects it."""
    lines = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == "DEBIAN" or path.is_symlink() or not path.is_file():
            continue
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        lines.append(f"{digest.hexdigest()}  {rel.as_posix()}\n")
    return "".join(lines)


def default_maintainer() -> str:
    """``$DEBFULLNAME <$DEBEMAIL>`` when both are set, else :data:`MAINTAINER`."""
    name, mail = os.environ.get("DEBFULLNAME"), os.environ.get("DEBEMAIL")
    return f"{name} <{mail}>" if name and mail else MAINTAINER


def build_deb(
    app_dir: Path,
    out_dir: Path,
    version: str | None = None,
    maintainer: str | None = None,
    compression: str = "xz",
    level: int | None = None,
) -> tuple[Path, dict[str, object]]:
    """Build the .deb of the one-folder app in ``app_dir`` into ``out_dir``.

    Args:
        app_dir: ``dist/PrimeStudio`` of ``packaging/build.py`` (Linux).
        out_dir: where ``prime-studio_<version>_<arch>.deb`` goes (written atomically).
        version: Debian version (default: pyproject's version, see :func:`debian_version`).
        maintainer: ``Name <email>`` (default: :func:`default_maintainer`).
        compression: dpkg-deb's ``-Z`` (``xz`` for releases; ``gzip`` or ``zstd`` are faster).
        level: dpkg-deb's ``-z`` (default: dpkg-deb's own).

    Returns:
        The .deb and facts about it (``depends``, ``installed_kib``, ``seconds``, ``roots``).
    """
    started = time.perf_counter()
    app_dir = Path(app_dir)
    if not (app_dir / manifest.APP_NAME).is_file() or not (app_dir / "_internal").is_dir():
        raise DebError(f"{app_dir} is not a one-folder build; run  python packaging/build.py  first")
    if shutil.which("dpkg-deb") is None:
        raise DebError("dpkg-deb not found: build the .deb on Debian or Ubuntu (package dpkg)")
    version = version or debian_version(project_version())
    maintainer = maintainer or default_maintainer()
    if not re.fullmatch(r"[^<>]+ <[^<>@\s]+@[^<>@\s]+>", maintainer):
        raise DebError(f"maintainer {maintainer!r} is not 'Name <email>'")
    deps, report = depends(app_dir)
    arch = architecture()
    when = float(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PACKAGE}_{version.split(':')[-1]}_{arch}.deb"
    with tempfile.TemporaryDirectory(prefix="prime-deb-", dir=out_dir) as scratch:
        root = Path(scratch) / "root"
        root.mkdir()
        os.chmod(root, 0o755)
        stage(app_dir, root, version, maintainer, when)
        (root / "DEBIAN").mkdir(mode=0o755)
        size = installed_size_kib(root)
        write_text(root / "DEBIAN" / "control", control(version, arch, maintainer, deps, size))
        write_bytes(root / "DEBIAN" / "md5sums", md5sums(root).encode())
        for name in ("control", "md5sums"):
            os.chmod(root / "DEBIAN" / name, 0o644)
        command = ["dpkg-deb", "--root-owner-group", f"-Z{compression}"]
        command += [f"-z{level}"] if level is not None else []
        with atomic_path(target) as tmp:
            done = subprocess.run(
                [*command, "--build", str(root), str(tmp)],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
            )
            if done.returncode != 0:
                raise DebError(f"dpkg-deb failed: {done.stderr.strip() or done.stdout.strip()}")
        os.chmod(target, 0o644)
    facts = {"depends": deps, "installed_kib": size, "seconds": time.perf_counter() - started}
    facts["roots"] = report.roots
    return target, facts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description="Build the Prime Studio .deb from the one-folder app.")
    p.add_argument("--app", type=Path, default=ROOT / "dist" / manifest.APP_NAME, help="the one-folder app")
    p.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    p.add_argument("--version", help="Debian version (default: pyproject's)")
    p.add_argument("--maintainer", help="'Name <email>' (default: $DEBFULLNAME <$DEBEMAIL>, else MAINTAINER)")
    p.add_argument("--compression", default="xz", choices=["xz", "zstd", "gzip", "none"], help="default xz")
    p.add_argument("--level", type=int, help="compression level (default: dpkg-deb's)")
    p.add_argument("--print-depends", action="store_true", help="print the Depends analysis and stop")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the .deb; 0 on success, 2 with a one-line reason otherwise."""
    args = parse_args(argv)
    try:
        if args.print_depends:
            deps, report = depends(args.app)
            for path, users in sorted(report.system.items()):
                print(f"{path}  <- {len(users)} file(s), e.g. {sorted(users)[0]}")
            print(f"{report.roots} programs, extensions and plugins checked")
            print("Depends: " + ", ".join(deps))
            return 0
        deb, facts = build_deb(
            args.app, args.out, args.version, args.maintainer, args.compression, args.level
        )
    except DebError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Depends: {', '.join(facts['depends'])}")
    print(
        f"built {deb} in {facts['seconds']:.0f} s: {deb.stat().st_size / 2**20:.0f} MiB, "
        f"{facts['installed_kib'] / 1024:.0f} MiB installed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
