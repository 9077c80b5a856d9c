"""The ``cluster up`` console against a fake cluster: each command, and each refusal."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field

from refimpl.console import HELP, Console, run_console


@dataclass
class FakeProcess:
    code: int | None = None
    signals: list[int] = field(default_factory=list)

    def poll(self) -> int | None:
        return self.code

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)


@dataclass
class FakePeer:
    index: int
    process: FakeProcess | None = field(default_factory=FakeProcess)


@dataclass
class FakeCluster:
    peers: list[FakePeer]
    restarts: list[int] = field(default_factory=list)
    kills: list[tuple[int, int]] = field(default_factory=list)

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        self.kills.append((index, sig))
        process = self.peers[index].process
        assert process is not None
        process.code = -sig

    def restart(self, index: int) -> object:
        self.restarts.append(index)
        self.peers[index].process = FakeProcess()
        return self.peers[index]


def console(peers: int = 3) -> tuple[Console, FakeCluster, list[str]]:
    cluster = FakeCluster([FakePeer(i) for i in range(peers)])
    said: list[str] = []
    return Console(cluster, said.append, lambda: "TABLE"), cluster, said


def test_kill_then_restart_a_peer() -> None:
    c, cluster, said = console()
    c.handle("kill 1")
    assert cluster.kills == [(1, signal.SIGKILL)]
    assert "peer 1 killed" in said[-1]
    c.report_exits()  # a peer the console killed is not reported as a surprise
    assert len(said) == 1
    c.handle("restart 1")
    assert cluster.restarts == [1]
    assert said[-1] == "peer 1 restarted from its storage"


def test_pause_and_resume_send_stop_and_cont_without_waiting() -> None:
    c, cluster, said = console()
    c.handle("pause 2")
    c.handle("  RESUME   2 ")
    process = cluster.peers[2].process
    assert process is not None
    assert process.signals == [signal.SIGSTOP, signal.SIGCONT]
    assert cluster.kills == []  # LocalCluster.kill waits for an exit: not for these
    assert "paused" in said[0] and "resumed" in said[1]


def test_refusals_change_nothing() -> None:
    c, cluster, said = console()
    for line in ("kill", "kill x", "kill 3", "kill -1", "restart 0", "jump 1"):
        c.handle(line)
    assert cluster.kills == [] and cluster.restarts == []
    assert said == [
        "which peer? give its number, 0..2",
        "'x' is not a peer number (0..2)",
        "there is no peer 3: the peers are 0..2",
        "there is no peer -1: the peers are 0..2",
        "peer 0 is running; `kill 0` it first",
        "unknown command 'jump'; type `help` for the list",
    ]
    c.handle("kill 0")
    c.handle("pause 0")
    c.handle("kill 0")
    assert said[-2:] == [
        "peer 0 is not running; `restart 0` starts it",
        "peer 0 is not running; `restart 0` starts it",
    ]
    assert cluster.kills == [(0, signal.SIGKILL)]


def test_status_help_and_blank_lines() -> None:
    c, _, said = console()
    c.handle("")
    c.handle("status")
    c.handle("help")
    assert said == ["TABLE", HELP]


def test_an_exit_nobody_asked_for_is_reported_once() -> None:
    c, cluster, said = console()
    process = cluster.peers[2].process
    assert process is not None
    process.code = -9
    c.report_exits()
    c.report_exits()
    assert said == ["peer 2 exited (code -9); `restart 2` brings it back"]
    c.handle("restart 2")
    process = cluster.peers[2].process
    assert process is not None
    process.code = 1
    c.report_exits()
    assert said[-1] == "peer 2 exited (code 1); `restart 2` brings it back"


def test_the_loop_survives_a_failing_command_and_stops_when_asked() -> None:
    c, cluster, said = console()

    def broken(index: int) -> object:
        raise OSError("no such file")

    cluster.restart = broken  # type: ignore[method-assign]
    cluster.peers[0].process = FakeProcess(code=0)
    stop = threading.Event()
    run_console(c, iter(["restart 0\n", "status\n"]), stop)
    assert said == ["'restart 0' failed: OSError: no such file", "TABLE"]
    stop.set()
    run_console(c, iter(["status\n"]), stop)
    assert said[-1] == "TABLE" and len(said) == 2
