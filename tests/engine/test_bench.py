"""``prime bench``: the quick configurations run and report what the README tables need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.bench.sample import NetworkTimer, bench_sample, expected_idle_steps
from engine.cli import main
from engine.config import ModelConfig
from engine.models import PrimeModel

REPO = Path(__file__).resolve().parents[2]


def test_expected_idle_steps_closed_form() -> None:
    # docs/METHOD.md §6: at T = L = 1024, 36.8% idle for MDM, 13.5% for ell = 2, 1.8% for ell = 4
    for ell, share in [(1, 0.368), (2, 0.135), (4, 0.018)]:
        assert expected_idle_steps(1024, 1024 * ell) / 1024 == pytest.approx(share, abs=0.001)


def test_network_timer_counts_real_forward_calls() -> None:
    cfg = ModelConfig(modality="text", num_classes=256, seq_len=4, d_model=16, n_layers=1, n_heads=2)
    model = PrimeModel(cfg)
    timer = NetworkTimer(model)
    with torch.no_grad():
        for _ in range(3):
            model(torch.zeros(1, 4, 1, dtype=torch.long))
    timer.close()
    with torch.no_grad():
        model(torch.zeros(1, 4, 1, dtype=torch.long))  # after close: not counted
    assert timer.calls == 3 and timer.seconds > 0


def test_bench_sample_rows() -> None:
    report = bench_sample([1, 2], [4, 8], size="tiny", image_size=3, num_samples=2, repeats=2)
    rows = report["rows"]
    assert [(r["ell"], r["steps"]) for r in rows] == [(1, 4), (1, 8), (2, 4), (2, 8)]
    for r in rows:
        assert 1 <= r["nfe_mean"] <= r["steps"]
        assert r["nfe_mean"] + r["idle_steps_mean"] == pytest.approx(r["steps"])  # caching: NFE = T - idle
        assert r["network_ms_per_step"] > 0 and r["overhead_ms_per_step"] >= 0
        assert r["trajectory_bytes_per_subtoken"] > 0
    # the digit record does not grow with T
    by = {(r["ell"], r["steps"]): r["trajectory_bytes_per_subtoken"] for r in rows}
    assert by[(1, 4)] == by[(1, 8)] and by[(2, 4)] == by[(2, 8)]


def test_bench_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "sample", "--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "sample" and report["rows"]
    assert main(["bench", "matmul", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "GFLOP/s peak" in out and "bfloat16" in out and "float32" in out


def test_bench_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--ell", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["bench", "warp-drive"]) == 2
    assert "warp-drive" in capsys.readouterr().err


def test_finding_other_benchmarks_imports_nothing_of_studio() -> None:
    """``prime bench gui`` runs ``python -m studio.bench`` in a subprocess; engine never imports studio."""
    probe = (
        "import sys; from engine.cli.bench import _module_available as ok; "
        "assert ok('engine.bench.train') and ok('studio.bench') and not ok('studio.no_such_bench'); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('studio', 'PySide6')]; "
        "assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_bench_pass_only_for_subprocess_modes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "matmul", "--pass=--x"]) == 2
    assert "--pass is for the train and gui" in capsys.readouterr().err
    assert main(["bench", "gui", "--quick"]) == 2
    assert "--pass" in capsys.readouterr().err
