"""Real peer processes on loopback: bootstrap, failover, restart, removal, and start-up errors."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http import models

from refimpl.launcher import LocalCluster, free_port

pytestmark = pytest.mark.cluster
TICK_MS = 30


def put_metadata(cluster: LocalCluster, index: int, key: str, value: Any) -> httpx.Response:
    url = f"{cluster.peers[index].rest_url}/cluster/metadata/keys/{key}"
    return httpx.put(url, json=value, timeout=10)


def get_metadata(cluster: LocalCluster, index: int, key: str) -> Any:
    """The value of ``key`` as peer ``index`` sees it (None while it does not answer)."""
    try:
        url = f"{cluster.peers[index].rest_url}/cluster/metadata/keys/{key}"
        return httpx.get(url, timeout=2).json()["result"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def put_until_accepted(cluster: LocalCluster, index: int, key: str, value: Any) -> None:
    """Retry on 503 (no leader yet), as a client following Retry-After would."""
    cluster.wait_until(
        f"PUT {key} accepted by peer {index}",
        lambda: _accepted(cluster, index, key, value),
        timeout_s=20,
    )


def _accepted(cluster: LocalCluster, index: int, key: str, value: Any) -> bool:
    try:
        return put_metadata(cluster, index, key, value).status_code == 200
    except httpx.HTTPError:
        return False


def start_three(cluster: LocalCluster) -> None:
    cluster.start_first()
    cluster.start_joiner(1)
    cluster.start_joiner(2, with_uri=False)
    cluster.wait_for_voters(3, timeout_s=60)


def test_bootstrap_failover_restart_and_removal(tmp_path: Path) -> None:
    """Spec "Distributed deployment" + "Raft": join, lose the leader, elect anew, catch up, and
    remove an empty peer (one cluster for all four steps keeps the suite fast)."""
    with LocalCluster(tmp_path, peers=3, tick_period_ms=TICK_MS) as cluster:
        start_three(cluster)
        infos = [cluster.cluster_info(i) for i in range(3)]
        assert all(info is not None for info in infos)
        peer_sets = [info["peers"] for info in infos if info]
        assert all(s == peer_sets[0] for s in peer_sets) and len(peer_sets[0]) == 3
        # Peer 2 started without --uri: peer 0 derived it from the connection and its p2p port.
        assert infos[2] is not None
        assert peer_sets[0][str(infos[2]["peer_id"])]["uri"] == cluster.peers[2].uri
        leader = cluster.wait_for_leader()
        # The official client parses our answers with its own models.
        official = QdrantClient(url=cluster.peers[1].rest_url, check_compatibility=False)
        status = official.http.distributed_api.cluster_status().result
        assert isinstance(status, models.ClusterStatusOneOf1) and len(status.peers) == 3
        assert official.info().version.startswith("1.19.")
        official.close()

        cluster.kill(leader, signal.SIGKILL)
        survivors = [i for i in range(3) if i != leader]
        new_leader = cluster.wait_for_leader(among=survivors, timeout_s=30)
        assert new_leader != leader
        put_until_accepted(cluster, survivors[0], "after-failover", 1)

        cluster.restart(leader)
        cluster.wait_until(
            "the restarted peer catches up",
            lambda: get_metadata(cluster, leader, "after-failover") == 1,
        )
        remove_a_follower(cluster)


def remove_a_follower(cluster: LocalCluster) -> None:
    """DELETE /cluster/peer/{id}: the peer leaves every peer set and stops its consensus."""
    leader = cluster.wait_for_leader()
    victim = next(i for i in range(3) if i != leader)
    victim_info = cluster.cluster_info(victim)
    assert victim_info is not None
    url = f"{cluster.peers[leader].rest_url}/cluster/peer/{victim_info['peer_id']}"
    response = httpx.delete(url, timeout=15)
    assert response.status_code == 200 and response.json()["result"] is True
    rest = [i for i in range(3) if i != victim]
    cluster.wait_for_voters(2, among=rest)
    for i in rest:
        info = cluster.cluster_info(i)
        assert info is not None and str(victim_info["peer_id"]) not in info["peers"]
    cluster.wait_until(
        "the removed peer stops",
        lambda: (
            (info := cluster.cluster_info(victim)) is not None
            and info["consensus_thread_status"]["consensus_thread_status"] == "stopped"
        ),
    )
    put_until_accepted(cluster, rest[0], "two-peers", True)


def run_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "QDRANT__STORAGE__STORAGE_PATH": str(tmp_path / "storage"),
                "QDRANT__SERVICE__HTTP_PORT": str(free_port()),
                "QDRANT__CLUSTER__P2P__PORT": str(free_port()), **(env or {})}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "refimpl.peer.cli", *args],
        env=full_env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["peer"], {"QDRANT__CLUSTER__P2P__PORT": "70000"}, 2, "cluster.p2p.port"),
        (["peer"], {"QDRANT__CLUSTER__ENABLED": "yes please"}, 2, "cluster.enabled"),
        (["peer", "--uri", "not-a-uri"], {"QDRANT__CLUSTER__ENABLED": "true"}, 2, "--uri"),
        (["peer", "--uri", "http://127.0.0.1:1/"], {}, 2, "cluster.enabled: true"),
        (["peer"], {"QDRANT__CLUSTER__ENABLED": "true"}, 1, "First peer should specify its uri"),
        (["cluster", "up", "--peers", "0"], {}, 2, "expected a positive integer"),
        (["peer", "--nope"], {}, 2, "unrecognized arguments: --nope"),
    ],
)
def test_bad_config_and_flags_fail_with_a_clear_message(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    """Start-up refuses bad input with one line naming the problem, not a traceback."""
    result = run_cli(tmp_path, *args, env=env)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_standalone_peer_has_no_p2p_and_still_applies_operations(tmp_path: Path) -> None:
    """cluster.enabled=false: GET /cluster is "disabled", nothing listens on the p2p port."""
    http_port, p2p_port = free_port(), free_port()
    env = {**os.environ, "REFIMPL_EXIT_WITH_PARENT": "1",
           "QDRANT__SERVICE__HOST": "127.0.0.1", "QDRANT__SERVICE__HTTP_PORT": str(http_port),
           "QDRANT__CLUSTER__P2P__PORT": str(p2p_port),
           "QDRANT__CLUSTER__CONSENSUS__TICK_PERIOD_MS": str(TICK_MS),
           "QDRANT__STORAGE__STORAGE_PATH": str(tmp_path / "storage")}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "refimpl.peer.cli", "peer"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{http_port}"
        cluster = LocalCluster(tmp_path / "unused", peers=1)
        cluster.wait_until("the REST API", lambda: fetch_status(base) == {"status": "disabled"})
        cluster.wait_until(
            "a write through the local Raft",
            lambda: _put_ok(f"{base}/cluster/metadata/keys/solo", "yes"),
        )
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", p2p_port), timeout=1):
            pass
        assert httpx.delete(f"{base}/cluster/peer/1", timeout=5).status_code == 405
    finally:
        process.terminate()
        process.wait(timeout=10)


def fetch_status(base: str) -> Any:
    try:
        return httpx.get(f"{base}/cluster", timeout=1).json()["result"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def _put_ok(url: str, value: Any) -> bool:
    try:
        return httpx.put(url, json=value, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
