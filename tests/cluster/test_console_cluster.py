"""`refimpl cluster up`'s console on a real 3-peer cluster: kill, restart, pause and resume a
peer by typing, as a tinkerer would, and watch the others keep a leader."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from refimpl.launcher import fetch_cluster, free_port
from tests.cluster._support import wait_until


class Launcher:
    """``refimpl cluster up`` in a child process, driven through its standard input."""

    def __init__(self, data: Path, base: int) -> None:
        command = [sys.executable, "-m", "refimpl.cli", "cluster", "up", "--peers", "3",
                   "--base-port", str(base), "--data-dir", str(data), "--tick-period-ms", "30"]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("QDRANT__")}
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str, timeout_s: float = 60) -> str:
        """The first console or log line from now on that contains ``text``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; last lines: {self.seen[-15:]}")

    def type(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self.reader.join(timeout=10)  # it ends at the end of the output
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def leader_seen_by(url: str, timeout_s: float = 1.0) -> int | None:
    """The leader a peer reports (None: no answer or no leader)."""
    info = fetch_cluster(url, timeout_s)
    leader = None if info is None else info["raft_info"].get("leader")
    return int(leader) if leader is not None else None


def wait_for(what: str, predicate: Callable[[], bool], timeout_s: float = 30) -> None:
    assert wait_until(predicate, timeout_s), f"timed out waiting for {what}"


def test_kill_restart_pause_and_resume_through_the_console(tmp_path: Path) -> None:
    base = free_port()
    urls = [f"http://127.0.0.1:{base + 10 * i}" for i in range(3)]
    launcher = Launcher(tmp_path / "c", base)
    try:
        launcher.expect("cluster is up")
        launcher.type("kill 2")
        launcher.expect("peer 2 killed (SIGKILL)")
        assert leader_seen_by(urls[2]) is None
        wait_for("a leader among peers 0 and 1", lambda: leader_seen_by(urls[0]) is not None)
        launcher.type("restart 2")
        launcher.expect("peer 2 restarted from its storage")
        wait_for("peer 2 back with a leader", lambda: leader_seen_by(urls[2]) is not None)

        launcher.type("pause 1")
        launcher.expect("peer 1 paused (SIGSTOP)")
        assert leader_seen_by(urls[1], timeout_s=1.0) is None  # frozen: no answer at all
        launcher.type("resume 1")
        launcher.expect("peer 1 resumed (SIGCONT)")
        wait_for("peer 1 answering again", lambda: leader_seen_by(urls[1]) is not None)

        launcher.type("restart 0")
        launcher.expect("peer 0 is running; `kill 0` it first")
        launcher.type("kill 7")
        launcher.expect("there is no peer 7: the peers are 0..2")
        launcher.type("status")
        launcher.expect("Leader")
    finally:
        launcher.stop()
