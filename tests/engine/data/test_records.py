"""Text from CSV and JSONL files with a named column."""

from __future__ import annotations

import json

from engine.config import ModelConfig
from engine.data import DataOptions, preflight

TXT = ModelConfig(modality="text", num_classes=256, seq_len=32, d_model=16, n_heads=2)


def test_csv_and_jsonl_columns_become_documents(tmp_path) -> None:
    (tmp_path / "a.csv").write_text('id,text\n1,"first, with a comma"\n2,second line\n')
    lines = [json.dumps({"text": "from jsonl"}), "not json", json.dumps({"other": 1}), json.dumps([1, 2])]
    (tmp_path / "b.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "notes.txt").write_text("a plain text file is still a document\n")
    report = preflight(tmp_path, TXT, DataOptions(column="text", val_fraction=0.0))
    assert report.ok, report.problem
    texts = [bytes(row).rstrip(b"\n").decode() for row in report.data.tokens]
    assert texts == [
        "first, with a comma",
        "second line",
        "from jsonl",
        "a plain text file is still a doc",
        "ument",
    ]
    assert any("3 records were left out" in w for w in report.warnings)
    assert "column 'text'" in report.stats["documents"]


def test_without_a_column_csv_is_plain_text(tmp_path) -> None:
    (tmp_path / "a.csv").write_text("id,text\n1,hello\n")
    report = preflight(tmp_path, TXT, DataOptions(val_fraction=0.0))
    assert bytes(report.data.tokens[0]).startswith(b"id,text\n1,hello\n")


def test_a_csv_without_the_column_is_refused_with_its_columns(tmp_path) -> None:
    (tmp_path / "a.csv").write_text("id,body\n1,hello\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "x"}) + "\n")
    report = preflight(tmp_path, TXT, DataOptions(column="text"))
    assert not report.ok
    skipped = {s.path: (s.reason, s.detail) for s in report.skipped}
    assert skipped["a.csv"] == ("no such column", "the header has no column 'text'; columns: 'id', 'body'")
    assert skipped["b.jsonl"][0] == "no such column" and "'body'" in skipped["b.jsonl"][1]
    assert "none of the 2 file(s) can be used (2 no such column)" in report.problem


def test_deep_json_lines_do_not_crash(tmp_path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "a.jsonl").write_text(deep + "\n" + json.dumps({"text": "kept"}) + "\n")
    report = preflight(tmp_path, TXT, DataOptions(column="text", val_fraction=0.0))
    assert report.ok and report.items == 1 and any("1 records were left out" in w for w in report.warnings)
