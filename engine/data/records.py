"""Text records from JSONL and CSV files: the value of one named column per record.

``--column NAME`` makes every ``.jsonl``/``.ndjson`` line (a JSON object) and every ``.csv``/
``.tsv`` row (the first row names the columns) one document: the column's text, UTF-8 encoded.
Without a column these files are plain text like any other. A file without the column is
skipped with the reason "no such column" and the columns it does have; lines that are not JSON
objects or lack the column are counted and reported, not silently dropped.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from engine.data.files import CORRUPT, NO_COLUMN, Skipped

MAX_FIELD = 1 << 26  # 64 MiB: a CSV field larger than this is refused
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class Records:
    """The documents of one file and how many of its records were left out."""

    docs: list[bytes]
    left_out: int
    total: int


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _columns(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:12])
    return shown + (f" and {len(names) - 12} more" if len(names) > 12 else "") if names else "none"


def _too_deep(line: str) -> bool:
    depth = top = 0
    for ch in line:
        if ch in "[{":
            depth += 1
            top = max(top, depth)
        elif ch in "]}":
            depth -= 1
    return top > MAX_JSON_DEPTH


def read_jsonl(data: bytes, rel: str, column: str) -> Records | Skipped:
    """One document per JSON-object line holding ``column``."""
    docs: list[bytes] = []
    total = left = 0
    seen: dict[str, None] = {}
    for raw in data.decode("utf-8", errors="replace").splitlines():
        if not raw.strip():
            continue
        total += 1
        try:
            obj = None if _too_deep(raw) else json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            obj = None
        if not isinstance(obj, dict):
            left += 1
            continue
        for k in obj:
            seen.setdefault(str(k), None)
        value = _text(obj.get(column))
        if value is None:
            left += 1
            continue
        docs.append(value.encode("utf-8"))
    if total and not docs:
        if seen:
            return Skipped(
                rel, NO_COLUMN, f"no record has the column {column!r}; keys found: {_columns(list(seen))}"
            )
        return Skipped(rel, CORRUPT, "no line is a JSON object")
    return Records(docs, left, total)


def read_csv(data: bytes, rel: str, column: str) -> Records | Skipped:
    """One document per row: the ``column`` field (the header row names the columns)."""
    text = data.decode("utf-8-sig", errors="replace")
    delimiter = "\t" if rel.lower().endswith(".tsv") else ","
    old = csv.field_size_limit()
    csv.field_size_limit(MAX_FIELD)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return Skipped(rel, CORRUPT, "no header row")
        names = [h.strip() for h in header]
        if column not in names:
            return Skipped(rel, NO_COLUMN, f"the header has no column {column!r}; columns: {_columns(names)}")
        at = names.index(column)
        docs: list[bytes] = []
        total = left = 0
        for row in reader:
            if not row:
                continue
            total += 1
            if at >= len(row):
                left += 1
                continue
            docs.append(row[at].encode("utf-8"))
    except csv.Error as exc:
        return Skipped(rel, CORRUPT, f"bad CSV ({exc})")
    finally:
        csv.field_size_limit(old)
    return Records(docs, left, total)


def read_records(data: bytes, rel: str, column: str) -> Records | Skipped:
    """Documents of a JSONL or CSV/TSV file by its extension."""
    low = rel.lower()
    if low.endswith((".jsonl", ".ndjson")):
        return read_jsonl(data, rel, column)
    return read_csv(data, rel, column)
