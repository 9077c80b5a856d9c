"""The local-cluster table and status command (no processes needed)."""

from pathlib import Path
from typing import Any

import pytest

from refimpl.launcher import cluster_status, render_table


def test_table_shows_roles_terms_and_down_peers() -> None:
    """`refimpl cluster status` prints one row per peer: id, URI, REST URL, role, term, commit."""
    info = {
        "peer_id": 42,
        "raft_info": {"role": "Leader", "term": 3, "commit": 9, "is_voter": True},
        "consensus_thread_status": {"consensus_thread_status": "working"},
    }
    rows: list[dict[str, Any]] = [
        {"uri": "http://127.0.0.1:6335/", "rest_url": "http://127.0.0.1:6333", "info": info},
        {"uri": "http://127.0.0.1:6345/", "rest_url": "http://127.0.0.1:6343", "info": None},
    ]
    lines = render_table(rows).splitlines()
    assert lines[0].split() == [
        "peer",
        "id",
        "URI",
        "REST",
        "URL",
        "role",
        "term",
        "commit",
        "voter",
    ]
    assert lines[1].split() == [
        "42", "http://127.0.0.1:6335/", "http://127.0.0.1:6333", "Leader", "3", "9", "yes",
    ]  # fmt: skip
    assert lines[2].split() == [
        "-",
        "http://127.0.0.1:6345/",
        "http://127.0.0.1:6343",
        "down",
        "-",
        "-",
        "-",
    ]


def test_status_without_a_cluster_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No cluster recorded in the data directory: exit 1 with a hint, not a traceback."""
    assert cluster_status(tmp_path) == 1
    assert "refimpl cluster up" in capsys.readouterr().err


def test_placement_lines_list_every_replica_of_every_shard() -> None:
    """`refimpl cluster status` shows, per shard, each replica's peer and state."""
    from refimpl.launcher import render_placement

    text = render_placement({"c": [(0, 11, "Active"), (0, 22, "Dead"), (1, 22, "Partial")]})
    assert text.splitlines() == ["c shard 0: 11:Active, 22:Dead", "c shard 1: 22:Partial"]
    assert render_placement({}) == ""
