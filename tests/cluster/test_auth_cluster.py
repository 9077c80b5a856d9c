"""Real peer processes with a REST API key and a p2p cluster secret (issue 10 "Authentication").

The spec warns that the p2p port can perform writes; Qdrant relies on network isolation for it.
Here peers prove a shared secret first: three peers with the secret form a cluster, a raw client
without it is disconnected and counted while the leader stays, and a peer with a wrong secret
cannot join. The official client talks to the keyed REST API with ``api_key=``.
"""

import socket
import time
import warnings
from pathlib import Path

import httpx
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http import models
from qdrant_client.http.exceptions import UnexpectedResponse

from refimpl.ids import PeerId, Term
from refimpl.launcher import LocalCluster
from refimpl.peer.frames import FrameDecoder, FrameType, encode_frame
from refimpl.peer.wire import encode_message
from refimpl.raft import TimeoutNow

pytestmark = pytest.mark.cluster
TICK_MS = 30
SECRET = "p2p-secret-51c0a7"
RW_KEY = "rest-rw-9e4d21"
RO_KEY = "rest-ro-3f8b66"
ENV = {
    "QDRANT__CLUSTER__P2P__SECRET": SECRET,
    "QDRANT__SERVICE__API_KEY": RW_KEY,
    "QDRANT__SERVICE__READ_ONLY_API_KEY": RO_KEY,
}


def client(cluster: LocalCluster, index: int, key: str) -> QdrantClient:
    """The official client against peer ``index`` (it sends ``key`` as the api-key header)."""
    with warnings.catch_warnings():
        # Plain http is what a loopback test cluster speaks; the client warns about it.
        warnings.filterwarnings("ignore", "Api key is used with an insecure connection")
        return QdrantClient(
            url=cluster.peers[index].rest_url, api_key=key, https=False, check_compatibility=False
        )


def knock_without_secret(port: int, frame: bytes) -> list[FrameType]:
    """Connect to a p2p port, send ``frame``, and return what came back before the close."""
    decoder, types = FrameDecoder(), []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame)
        while data := sock.recv(4096):
            types += [f.type for f in decoder.feed(data)]
    return types


def test_secret_cluster_refuses_strangers_and_serves_keyed_clients(tmp_path: Path) -> None:
    """Peers with the secret form a cluster; strangers and wrong secrets are refused."""
    with LocalCluster(tmp_path, peers=3, tick_period_ms=TICK_MS, extra_env=ENV) as cluster:
        cluster.start_first()
        cluster.start_joiner(1)
        cluster.start_joiner(2, with_uri=False)
        cluster.wait_for_voters(3, timeout_s=60)
        leader = cluster.wait_for_leader()
        before = cluster.cluster_info(leader)
        assert before is not None
        follower = next(i for i in range(3) if i != leader)
        follower_info = cluster.cluster_info(follower)
        assert follower_info is not None
        # Accepted, a TimeoutNow would make the follower campaign and end this leader's term.
        attack = TimeoutNow(
            Term(before["raft_info"]["term"]), PeerId(before["peer_id"]), follower_info["peer_id"]
        )
        refused_before = follower_info["p2p_receive_errors"].get("handshake_missing", 0)
        answer = knock_without_secret(
            cluster.peers[follower].p2p_port, encode_frame(FrameType.RAFT, encode_message(attack))
        )
        assert answer == [FrameType.HANDSHAKE]  # the challenge, then the close
        time.sleep(20 * TICK_MS / 1000)  # longer than an election would take
        after = cluster.cluster_info(follower)
        assert after is not None
        assert after["p2p_receive_errors"]["handshake_missing"] == refused_before + 1
        assert after["raft_info"]["term"] == before["raft_info"]["term"]
        assert cluster.leader() == leader

        keyed_rest(cluster)
        wrong_secret_cannot_join(cluster, leader)


def keyed_rest(cluster: LocalCluster) -> None:
    """REST needs the key: 401 without, the official client with api_key, read-only is 403."""
    response = httpx.get(f"{cluster.peers[1].rest_url}/collections", timeout=10)
    assert response.status_code == 401
    assert httpx.get(f"{cluster.peers[1].rest_url}/readyz", timeout=10).status_code == 200
    writer = client(cluster, 1, RW_KEY)
    writer.create_collection(
        "c", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT)
    )
    writer.upsert("c", [models.PointStruct(id=1, vector=[1.0, 0.0])], wait=True)
    reader = client(cluster, 2, RO_KEY)
    assert [p.id for p in reader.query_points("c", query=[1.0, 0.0], limit=1).points] == [1]
    with pytest.raises(UnexpectedResponse) as caught:
        reader.upsert("c", [models.PointStruct(id=2, vector=[0.0, 1.0])], wait=True)
    assert caught.value.status_code == 403
    assert writer.count("c").count == 1
    writer.close()
    reader.close()


def wrong_secret_cannot_join(cluster: LocalCluster, leader: int) -> None:
    """A peer started with another secret stops with a clear error; it never joins."""
    cluster.add_peer_slot()
    cluster.extra_env["QDRANT__CLUSTER__P2P__SECRET"] = "not-the-secret"
    try:
        intruder = cluster.start_joiner(3)
    finally:
        cluster.extra_env["QDRANT__CLUSTER__P2P__SECRET"] = SECRET
    assert intruder.process is not None
    assert intruder.process.wait(timeout=30) == 1
    log = intruder.log_path.read_text()
    assert "refused our p2p handshake: wrong cluster secret" in log, log
    assert "not-the-secret" not in log and SECRET not in log
    info = cluster.cluster_info(0)
    assert info is not None and len(info["peers"]) == 3
    assert info["p2p_receive_errors"].get("handshake_bad_secret", 0) >= 1
    assert cluster.leader(among=[0, 1, 2]) == leader
    for peer in cluster.peers[:3]:
        text = peer.log_path.read_text()
        assert SECRET not in text and RW_KEY not in text and RO_KEY not in text


def test_cluster_up_flags_give_every_peer_the_key_and_the_secret(tmp_path: Path) -> None:
    """`refimpl cluster up --api-key K --p2p-secret S` starts keyed peers; status needs K.

    Two peers must form a cluster (so the secret reached both: a peer without it could not
    join), REST refuses a request without the key, and `cluster status --api-key K` reads the
    table. Neither secret appears in what the launcher prints or in the peers' logs.
    """
    import os
    import signal
    import subprocess
    import sys

    from refimpl.launcher import free_port

    base = free_port()
    data = tmp_path / "c"
    command = [sys.executable, "-m", "refimpl.cli", "cluster", "up", "--peers", "2",
               "--base-port", str(base), "--data-dir", str(data), "--tick-period-ms", "30",
               "--api-key", RW_KEY, "--p2p-secret", SECRET]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("QDRANT__")}
    launcher = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{base}"
        deadline, voters = time.monotonic() + 60, 0
        while time.monotonic() < deadline and voters < 2:
            time.sleep(0.3)
            try:
                reply = httpx.get(f"{url}/cluster", headers={"api-key": RW_KEY}, timeout=2)
            except httpx.HTTPError:
                continue
            if reply.status_code == 200:
                voters = sum(1 for p in reply.json()["result"]["peers"].values() if p)
        assert voters == 2, "two peers sharing the secret did not form a cluster"
        assert httpx.get(f"{url}/collections", timeout=5).status_code == 401
        # A peer without a secret would not challenge; this one does, then closes.
        hello = encode_frame(FrameType.RAFT, b"{}")
        assert knock_without_secret(base + 2, hello) == [FrameType.HANDSHAKE]
        status = [sys.executable, "-m", "refimpl.cli", "cluster", "status", "--data-dir",
                  str(data), "--api-key", RW_KEY]  # fmt: skip
        shown = subprocess.run(status, check=False, env=env, capture_output=True, text=True,
                               timeout=30)  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert "Leader" in shown.stdout
    finally:
        launcher.send_signal(signal.SIGTERM)
        out, _ = launcher.communicate(timeout=30)
    logs = out.decode() + "".join(p.read_text() for p in data.glob("peer-*.log"))
    assert RW_KEY not in logs and SECRET not in logs
