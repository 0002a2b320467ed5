"""Rebuild ``datasets/kjv/kjv.txt.xz``, the King James Bible text (public domain).

Source: Debian's ``bible-kjv`` (the ``bible`` retrieval program) and ``bible-kjv-text`` (its
data). :func:`build` runs ``apt-get download bible-kjv bible-kjv-text`` in a folder, unpacks both
with ``dpkg-deb -x`` and prints every verse with ``bible -p <unpacked>/usr/lib -f
'gen1:1-rev22:21'``: 31,102 lines of ``<book abbreviation><chapter>:<verse> <text>`` (e.g.
``Ge1:1 In the beginning ...``), kept exactly as printed because :mod:`engine.training.recipes` parses
that form. ``python -m engine.data.kjv --out datasets/kjv/kjv.txt.xz`` writes it xz-compressed
(``xz -9e``) and checks it against the sha256 recorded in ``datasets/kjv/README.md``
(bible-kjv 4.38: 4,404,412 bytes, 981,720 bytes compressed). Validation books and the way the
text becomes sequences are the recipes' business (see that README).
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import subprocess
import sys
import tempfile
from pathlib import Path

NUM_VERSES = 31102
SHA256 = "cd45f0c9cedab8e4439bd6486c8952c77cc8b0ecc5d1f6ae3513f2039f47229d"  # of the uncompressed text


def build(workdir: str | Path) -> bytes:
    """Download, unpack and print the KJV in ``workdir``; returns the text (31,102 verse lines).

    Needs ``apt-get`` (package lists up to date: ``apt-get update``) and ``dpkg-deb``.

    Raises:
        RuntimeError: a tool failed or the output does not have one line per verse.
    """
    work = Path(workdir)
    try:
        subprocess.run(["apt-get", "download", "bible-kjv", "bible-kjv-text"], cwd=work, check=True)
        debs = sorted(work.glob("bible-kjv*.deb"))
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], check=True)
        text = subprocess.run(
            [str(work / "root/usr/bin/bible"), "-p", str(work / "root/usr/lib"), "-f", "gen1:1-rev22:21"],
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(f"building the KJV text failed: {exc}") from None
    lines = text.count(b"\n")
    if lines != NUM_VERSES:
        raise RuntimeError(f"expected {NUM_VERSES} verse lines from 'bible', got {lines}")
    return text


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.data.kjv --out datasets/kjv/kjv.txt.xz``."""
    p = argparse.ArgumentParser(prog="python -m engine.data.kjv", description="rebuild the KJV text (xz)")
    p.add_argument("--out", required=True, help="the .txt.xz file to write")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        text = build(tmp)
    digest = hashlib.sha256(text).hexdigest()
    packed = lzma.compress(text, preset=9 | lzma.PRESET_EXTREME)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(packed)
    same = "matches" if digest == SHA256 else "DIFFERS from"
    print(
        f"{NUM_VERSES} verses, {len(text):,} bytes ({len(packed):,} xz) -> {args.out}; sha256 {same} README"
    )
    return 0 if digest == SHA256 else 1


if __name__ == "__main__":
    sys.exit(main())
