"""The training benchmark runs the real trainer and reports a fraction of the matmul peak."""

from __future__ import annotations

from engine.bench.train import run, train_flops_per_token, train_table
from tests.engine.training._tiny import IMG


def test_flops_count_covers_linear_layers_and_attention() -> None:
    d, L = IMG.d_model, IMG.seq_length
    linear = 4 * d * d + 2 * 4 * d * d + d * IMG.num_classes  # qkv + proj, the MLP, the head
    assert train_flops_per_token(IMG) == 6 * linear + 12 * IMG.n_layers * L * d


def test_quick_run_reports_fp32_and_bf16(monkeypatch) -> None:
    report = run(
        {"quick": True, "sizes": ["tiny"], "seq_len": 16, "batch_size": 2, "steps": 1, "matmul_sizes": [128]}
    )
    assert [r["precision"] for r in report["rows"]] == ["fp32", "bf16 autocast"]
    for r in report["rows"]:
        assert r["tokens_per_s"] > 0 and 0 < r["fraction_of_fp32_peak"]
    assert report["matmul_peak_gflops"]["float32"] > 0
    assert "of fp32 peak" in train_table(report)
