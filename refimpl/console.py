"""The console of ``refimpl cluster up``: type a command to hurt a peer or bring it back.

Rules:

* one command per line, read from standard input while the cluster runs:
  ``kill N`` (SIGKILL: a crash; the peer keeps its storage), ``pause N`` (SIGSTOP: a peer that
  hangs without dying), ``resume N`` (SIGCONT), ``restart N`` (start a stopped peer again from
  its storage, as after a crash), ``status`` (the cluster table), ``help``; peers are numbered
  as in the table (0, 1, ...);
* a command that cannot be carried out (an unknown word, a peer number out of range, restarting
  a peer that runs, pausing one that is down) is answered with one line saying why, and
  changes nothing;
* a peer that exits without being told to (killed from another terminal, crashed) is reported
  once, with the command that brings it back.

Theory of operation: :class:`Console` holds no state of its own beyond the peers it has
reported as gone; it acts on a :class:`~refimpl.launcher.LocalCluster` through its ``kill`` and
``restart`` methods and prints through a callback, so a test drives it line by line without a
terminal. :func:`run_console` is the loop ``cluster up`` runs in a thread.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

__all__ = ["HELP", "Console", "ConsoleCluster", "run_console"]

HELP = """commands (peers are numbered as in the table):
  kill N      SIGKILL peer N: a crash; its storage stays, `restart N` brings it back
  pause N     SIGSTOP peer N: it hangs without dying (the others stop hearing from it)
  resume N    SIGCONT peer N
  restart N   start stopped peer N again from its storage
  status      print the cluster table
  help        this text"""


class _Process(Protocol):
    def poll(self) -> int | None: ...  # pragma: no cover - protocol

    def send_signal(self, sig: int) -> None: ...  # pragma: no cover - protocol


class _Peer(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def process(self) -> _Process | None: ...


class ConsoleCluster(Protocol):
    """What the console needs of :class:`refimpl.launcher.LocalCluster`."""

    @property
    def peers(self) -> Sequence[_Peer]: ...  # pragma: no cover - protocol

    def kill(self, index: int, sig: int = ...) -> None: ...  # pragma: no cover - protocol

    def restart(self, index: int) -> object: ...  # pragma: no cover - protocol


class Console:
    """Carries out console commands on ``cluster`` (see the module rules)."""

    def __init__(
        self, cluster: ConsoleCluster, say: Callable[[str], None], status: Callable[[], str]
    ) -> None:
        self.cluster = cluster
        self.say = say
        self.status = status
        self.paused: set[int] = set()
        self._expected_down: set[int] = set()
        self._reported_down: set[int] = set()

    def _peer(self, word: str | None) -> int | None:
        count = len(self.cluster.peers)
        if word is None:
            self.say(f"which peer? give its number, 0..{count - 1}")
            return None
        try:
            index = int(word)
        except ValueError:
            self.say(f"{word!r} is not a peer number (0..{count - 1})")
            return None
        if not 0 <= index < count:
            self.say(f"there is no peer {index}: the peers are 0..{count - 1}")
            return None
        return index

    def _running(self, index: int) -> bool:
        process = self.cluster.peers[index].process
        return process is not None and process.poll() is None

    def handle(self, line: str) -> None:
        """Carry out one line (blank lines are ignored)."""
        words = line.split()
        if not words:
            return
        command, argument = words[0].lower(), (words[1] if len(words) > 1 else None)
        if command in ("help", "?"):
            self.say(HELP)
        elif command == "status":
            self.say(self.status())
        elif command in ("kill", "pause", "resume", "restart"):
            index = self._peer(argument)
            if index is not None:
                self._act(command, index)
        else:
            self.say(f"unknown command {words[0]!r}; type `help` for the list")

    def _act(self, command: str, index: int) -> None:
        running = self._running(index)
        if command == "restart":
            if running:
                self.say(f"peer {index} is running; `kill {index}` it first")
                return
            self.cluster.restart(index)
            self.paused.discard(index)
            self._expected_down.discard(index)
            self._reported_down.discard(index)
            self.say(f"peer {index} restarted from its storage")
            return
        if not running:
            self.say(f"peer {index} is not running; `restart {index}` starts it")
            return
        if command == "kill":
            self._expected_down.add(index)
            self.cluster.kill(index, signal.SIGKILL)
            self.paused.discard(index)
            self.say(f"peer {index} killed (SIGKILL); its storage stays: `restart {index}`")
        elif command == "pause":
            self._signal(index, signal.SIGSTOP)
            self.paused.add(index)
            self.say(f"peer {index} paused (SIGSTOP); `resume {index}` wakes it")
        else:
            self._signal(index, signal.SIGCONT)
            self.paused.discard(index)
            self.say(f"peer {index} resumed (SIGCONT)")

    def _signal(self, index: int, sig: int) -> None:
        """Send ``sig`` without waiting for the peer to exit (it does not)."""
        process = self.cluster.peers[index].process
        if process is not None:
            process.send_signal(sig)

    def report_exits(self) -> None:
        """Say once about each peer that went down without a console command."""
        for peer in self.cluster.peers:
            process = peer.process
            if process is None or process.poll() is None:
                continue
            index = peer.index
            if index in self._expected_down or index in self._reported_down:
                continue
            self._reported_down.add(index)
            self.say(
                f"peer {index} exited (code {process.poll()}); `restart {index}` brings it back"
            )


def run_console(console: Console, lines: Iterable[str], stop: threading.Event) -> None:
    """Carry out ``lines`` (standard input) until it ends or ``stop`` is set."""
    for line in lines:
        if stop.is_set():
            return
        try:
            console.handle(line)
        except Exception as exc:  # a failed command must not end the console
            console.say(f"{line.strip()!r} failed: {type(exc).__name__}: {exc}")
