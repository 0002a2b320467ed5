"""The pieces of the .deb build that need no bundle (fast): versions, dependencies, ELF search paths."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


@pytest.fixture()
def deb(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(PACKAGING))
    for name in ("deb", "elf", "manifest", "icons"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import deb as module

    return module


@pytest.fixture()
def elf(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(PACKAGING))
    monkeypatch.delitem(sys.modules, "elf", raising=False)
    import elf as module

    return module


@pytest.mark.parametrize(
    ("pep440", "debian"),
    [("0.1.0", "0.1.0"), ("1.0rc1", "1.0~rc1"), ("1.0.dev3", "1.0~dev3"), ("1.0+ubuntu1", "1.0+ubuntu1")],
)
def test_debian_version_keeps_the_order_of_pre_releases(deb, pep440, debian) -> None:
    assert deb.debian_version(pep440) == debian
    if shutil.which("dpkg") and debian != pep440 and "~" in debian:
        final = debian.split("~")[0]  # a pre-release sorts before its release, as in PEP 440
        assert subprocess.run(["dpkg", "--compare-versions", debian, "lt", final]).returncode == 0


def test_debian_version_refuses_what_dpkg_cannot_read(deb) -> None:
    with pytest.raises(deb.DebError, match="cannot be a Debian version"):
        deb.debian_version("latest build")


def test_project_version_is_pyprojects(deb) -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'version = "{deb.project_version()}"' in text


def test_dependencies_merge_to_one_per_package_with_the_highest_minimum(deb) -> None:
    merged = deb.merge_dependencies(
        ["libc6 (>= 2.34)", "libxcb1 (>= 1.12)", "libc6 (>= 2.36)", "libc6", "xkb-data"]
    )
    assert merged == ["libc6 (>= 2.36)", "libxcb1 (>= 1.12)", "xkb-data"]
    assert deb.merge_dependencies(["libfoo1 (>= 1.9)", "libfoo1 (>= 1.10)"]) == ["libfoo1 (>= 1.10)"]


def test_shlibs_entry_gives_the_minimum_version(deb, tmp_path) -> None:
    (tmp_path / "libxcb1:amd64.shlibs").write_text(
        "libxcb 1 libxcb1 (>= 1.12)\nudeb: libxcb 1 libxcb1-udeb (>= 1.12)\n", encoding="utf-8"
    )
    assert deb.shlibs_dependency("libxcb1", "libxcb.so.1", info=tmp_path) == "libxcb1 (>= 1.12)"
    assert deb.shlibs_dependency("libxcb1", "libxcb.so.2", info=tmp_path) == "libxcb1"  # another soname
    assert deb.shlibs_dependency("libnone0", "libnone.so.0", info=tmp_path) == "libnone0"


def test_maintainer_must_be_name_and_address(deb, tmp_path) -> None:
    app = tmp_path / "PrimeStudio"
    (app / "_internal").mkdir(parents=True)
    (app / "PrimeStudio").write_bytes(b"")
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not found")
    with pytest.raises(deb.DebError, match="is not 'Name <email>'"):
        deb.build_deb(app, tmp_path / "out", maintainer="nobody")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_build_refuses_a_folder_that_is_not_a_build(deb, tmp_path) -> None:
    with pytest.raises(deb.DebError, match="is not a one-folder build"):
        deb.build_deb(tmp_path, tmp_path / "out")


def test_control_file_fields(deb) -> None:
    text = deb.control("0.1.0", "amd64", "A B <a@b.org>", ["libc6 (>= 2.36)", "libxcb1"], 1234)
    fields = dict(line.split(": ", 1) for line in text.splitlines() if line and not line.startswith(" "))
    assert fields["Package"] == "prime-studio" and fields["Depends"] == "libc6 (>= 2.36), libxcb1"
    assert fields["Section"] == "science" and fields["Installed-Size"] == "1234"
    body = [line for line in text.splitlines() if line.startswith(" ")]
    assert body and all(len(line) <= 80 for line in body) and " ." in body


@pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("readelf") is None, reason="needs gcc and readelf"
)
def test_build_machine_search_paths_are_removed_and_origin_ones_kept(elf, tmp_path) -> None:
    source = tmp_path / "x.c"
    source.write_text("int answer(void) { return 42; }\n", encoding="utf-8")

    def library(name: str, rpath: str) -> Path:
        out = tmp_path / name
        subprocess.run(
            [
                "gcc",
                "-shared",
                "-fPIC",
                "-o",
                str(out),
                str(source),
                f"-Wl,-rpath,{rpath}",
                "-Wl,--enable-new-dtags",
            ],
            check=True,
        )
        return out

    only_build = library("libonly.so", "/root/.pyenv/versions/3.11.7/lib")
    mixed = library("libmixed.so", "$ORIGIN/../lib:/home/builder/lib")
    relative = library("librel.so", "$ORIGIN")
    assert elf.search_paths(only_build) == ["/root/.pyenv/versions/3.11.7/lib"]

    only_build.chmod(0o755)
    assert elf.drop_foreign_search_paths(only_build) == ["/root/.pyenv/versions/3.11.7/lib"]
    dynamic = subprocess.run(
        ["readelf", "-d", str(only_build)], capture_output=True, text=True, check=True
    ).stdout
    assert "RUNPATH" not in dynamic and "RPATH" not in dynamic and "NULL" in dynamic
    assert only_build.stat().st_mode & 0o777 == 0o755  # the mode is kept

    assert elf.drop_foreign_search_paths(mixed) == ["/home/builder/lib"]
    assert elf.search_paths(mixed) == ["$ORIGIN/../lib"]
    before = relative.read_bytes()
    assert elf.drop_foreign_search_paths(relative) == [] and relative.read_bytes() == before

    # Each library still loads, and its code still runs.
    import ctypes

    for lib in (only_build, mixed, relative):
        assert ctypes.CDLL(str(lib)).answer() == 42

    not_elf = tmp_path / "notes.so"
    not_elf.write_bytes(b"just text")
    assert elf.search_paths(not_elf) == [] and elf.drop_foreign_search_paths(not_elf) == []
