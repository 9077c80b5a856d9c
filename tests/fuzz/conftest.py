"""A live three-peer cluster of real processes, shared by the fuzz tests of this folder.

The fuzzers talk to the peers the way an attacker or a broken client would: over real sockets
(REST and p2p), so the whole stack — hypercorn, Starlette, the frame decoder, the consensus
loop — is under test, and a crash shows up as a process that stops answering.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from refimpl.launcher import LocalCluster

TICK_MS = 50


@pytest.fixture(scope="session")
def live_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three peers on 127.0.0.1 with free ports, a leader elected; stopped at the end."""
    root: Path = tmp_path_factory.mktemp("fuzz-cluster")
    with LocalCluster(root, peers=3, tick_period_ms=TICK_MS) as cluster:
        cluster.start_first()
        cluster.start_joiner(1)
        cluster.start_joiner(2)
        cluster.wait_for_voters(3, timeout_s=60)
        yield cluster
