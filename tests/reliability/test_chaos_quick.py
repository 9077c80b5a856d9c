"""A short chaos run against real peer processes: nothing acknowledged is lost."""

from pathlib import Path

import pytest

from refimpl.testing.chaos import ChaosOptions, run_chaos

pytestmark = pytest.mark.cluster


def test_quick_chaos_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """Spec "Replication": with fewer failed peers than replicas no acknowledged write is lost,
    and collection operations through consensus stay linearizable under SIGKILL/SIGSTOP."""
    report = run_chaos(ChaosOptions(peers=3, faults=3, duration_s=60.0, seed=3), tmp_path)
    print("\n".join(report.lines()))
    assert len(report.faults) == 3
    assert report.acknowledged_writes > 0 and report.collection_ops > 0
    assert report.lost == []
    assert report.linearizability == "linearizable"
