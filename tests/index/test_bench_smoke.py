"""The index benchmark script runs end to end on tiny data (issue 4: a smoke run may be
tested; the full benchmark stays out of the test suite)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_index.py"


def test_quick_benchmark_measures_every_system(capsys: pytest.CaptureFixture[str]) -> None:
    """--quick prints the table and gives recall 1 for the exact scans and >= 0.9 for HNSW."""
    spec = importlib.util.spec_from_file_location("bench_index", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.main(["--quick", "--no-datasketch", "--efs", "16,64"])
    printed = capsys.readouterr().out
    assert "recall@10" in printed and "ours hnsw" in printed
    by_system = {(r.dataset, r.system, r.ef): r for r in rows}
    for dataset in ("clustered", "iid"):
        assert by_system[(dataset, "ours exact", 0)].recall == 1.0
        assert by_system[(dataset, "numpy brute", 0)].recall == 1.0
        assert by_system[(dataset, "ours hnsw", 64)].recall >= 0.9
        assert by_system[(dataset, "ours hnsw", 64)].qps_batch > 0
