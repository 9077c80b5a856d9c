"""The launcher's ports: picked outside the ephemeral range, never twice, moved on a clash."""

import errno
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from refimpl import launcher
from refimpl.launcher import (
    LocalCluster,
    PortInUseError,
    ephemeral_port_range,
    free_port,
)

TICK_MS = 50


@contextmanager
def held(port: int) -> Iterator[socket.socket]:
    """Another program listening on ``127.0.0.1:port`` for the duration of the block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield sock


def unpicked_free_port() -> int:
    """A port outside the ephemeral range that :func:`free_port` has not handed out (free now)."""
    low, high = ephemeral_port_range()
    rng = random.Random()
    while True:
        port = rng.choice([rng.randint(10_000, low - 1), rng.randint(high + 1, 65_535)])
        if port in launcher._given_ports:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


class ScriptedRandom(random.Random):
    """A random source whose ``randint`` answers the given ports in order."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__(0)
        self.ports = iter(ports)

    def randint(self, a: int, b: int) -> int:
        return next(self.ports)


def test_ephemeral_range_is_read_from_the_kernel_file_or_assumed(tmp_path: Path) -> None:
    """Linux says it in /proc; without that file (or with garbage) IANA's 49152-65535."""
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text("20000\t29999\n")
    assert ephemeral_port_range(range_file) == (20_000, 29_999)
    assert ephemeral_port_range(tmp_path / "missing") == (49_152, 65_535)
    range_file.write_text("not ports\n")
    assert ephemeral_port_range(range_file) == (49_152, 65_535)


def test_free_port_is_never_ephemeral_and_never_repeats() -> None:
    """500 picks: none where the kernel puts outgoing connections, no port twice."""
    low, high = ephemeral_port_range()
    if low <= 10_000 and high >= 65_535:
        pytest.skip(f"the ephemeral range {low}-{high} leaves no port outside it")
    ports = [free_port() for _ in range(500)]
    assert [p for p in ports if low <= p <= high] == []
    assert all(1024 <= p <= 65_535 for p in ports)
    assert len(set(ports)) == len(ports)


def test_free_port_skips_a_port_another_program_holds() -> None:
    """A candidate that cannot be bound is passed over for the next one."""
    taken, free = unpicked_free_port(), unpicked_free_port()
    with held(taken):
        assert free_port(ScriptedRandom([taken, free])) == free


def test_peer_constants_match_the_peer_side() -> None:
    """The launcher keeps copies of two peer conventions (importing the peer costs a second)."""
    from refimpl.peer.cli import EXIT_PORT_IN_USE
    from refimpl.peer.identity import IDENTITY_FILE

    assert launcher.EXIT_PORT_IN_USE == EXIT_PORT_IN_USE
    assert launcher.IDENTITY_FILE == IDENTITY_FILE


@pytest.mark.parametrize("which", ["REST", "p2p"])
def test_a_peer_whose_port_is_taken_comes_up_on_another(tmp_path: Path, which: str) -> None:
    """Another program holds the picked port: the peer exits with 3, the launcher starts it
    again on a fresh port, and the one-peer cluster comes up there."""
    with LocalCluster(tmp_path, peers=1, tick_period_ms=TICK_MS) as cluster:
        peer = cluster.peers[0]
        port = peer.http_port if which == "REST" else peer.p2p_port
        with held(port):
            cluster.start_first()
            cluster.wait_for_voters(1, timeout_s=60)
        assert (peer.http_port if which == "REST" else peer.p2p_port) != port
        info = cluster.cluster_info(0)
        assert info is not None and info["raft_info"]["role"] == "Leader"
        assert list(info["peers"].values()) == [{"uri": peer.uri}]
        log = peer.log_path.read_text()
        setting = "service.http_port" if which == "REST" else "cluster.p2p.port"
        assert f"port in use: {setting} {port}" in log


def test_a_joiner_follows_the_first_peer_to_its_new_p2p_port(tmp_path: Path) -> None:
    """Peer 1 was started through peer 0's old URI before peer 0's clash showed: it is pointed
    at the new URI and both become voters."""
    with LocalCluster(tmp_path, peers=2, tick_period_ms=TICK_MS) as cluster:
        first = cluster.peers[0]
        old_uri = first.uri
        with held(first.p2p_port):
            cluster.start_first()
            cluster.start_joiner(1)
            cluster.wait_for_voters(2, timeout_s=60)
        assert first.uri != old_uri
        assert cluster.peers[1].flags[:2] == ("--bootstrap", first.uri)


def test_cluster_up_on_a_taken_base_port_says_so(tmp_path: Path) -> None:
    """``refimpl cluster up --base-port P`` with P taken: the ports were the user's choice, so
    no silent move; exit 1 at once with the port and its setting named (not a 60 s timeout)."""
    base = unpicked_free_port()
    command = [sys.executable, "-m", "refimpl.peer.cli", "cluster", "up", "--peers", "1",
               "--base-port", str(base), "--data-dir", str(tmp_path)]  # fmt: skip
    with held(base):
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert f"service.http_port {base} on 127.0.0.1 is held by another process" in done.stderr
    assert "chosen by the caller" in done.stderr
    assert "timed out" not in done.stderr


def test_no_retry_left_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When every retry is spent the launcher gives up, saying which port was held."""
    monkeypatch.setattr(launcher, "PORT_RETRIES", 0)
    with LocalCluster(tmp_path, peers=1, tick_period_ms=TICK_MS) as cluster:
        port = cluster.peers[0].http_port
        with held(port), pytest.raises(PortInUseError, match="gave up after 0 starts"):
            cluster.start_first()
            cluster.wait_for_voters(1, timeout_s=60)


def test_a_port_taken_during_start_up_also_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    """The peer checks its ports before starting; one taken between that check and the bind
    fails the server with EADDRINUSE, which is reported with status 3 too (1 for the rest)."""
    from refimpl.peer.cli import _report

    ports = [("service.http_port", 16333), ("cluster.p2p.port", 16335)]
    in_use = OSError(errno.EADDRINUSE, "Address already in use")
    assert _report([in_use], ports) == 3
    assert "service.http_port 16333, cluster.p2p.port 16335" in capsys.readouterr().err
    assert _report([RuntimeError("storage is broken")], ports) == 1
    assert _report([OSError(errno.EACCES, "Permission denied")], ports) == 1
