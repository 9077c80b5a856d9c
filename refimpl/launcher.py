"""A local cluster of real peer processes on 127.0.0.1 (``refimpl cluster up`` and the tests).

Rules:

* Peer ``i`` gets its own storage folder ``<data_dir>/peer-<i>/``, its own log file
  ``<data_dir>/peer-<i>.log`` and its own ports: REST ``base_port + 10 i``, p2p that plus 2
  (peer 0 on Qdrant's 6333 / 6335 by default). With ``base_port=None`` the launcher picks the
  ports itself with :func:`free_port`: at random, outside the kernel's ephemeral range (the
  ports it hands to outgoing connections and to ``bind(port 0)``), free when picked, and never
  the same port twice in one process.
* A picked port can still be taken before the peer binds it (another test run, another
  program). The peer then exits with :data:`~refimpl.peer.cli.EXIT_PORT_IN_USE`; the launcher
  notices while it waits (:meth:`LocalCluster.wait_until` and everything built on it), gives
  the peer fresh ports for the ports that are held and starts it again, at most
  :data:`PORT_RETRIES` times, then raises :class:`PortInUseError`. A p2p port is only changed
  while no other peer can know it (the peer has not joined or founded a cluster yet); peers
  still trying to join through the old p2p URI are restarted with the new one. Ports the caller
  chose (``base_port``) are never changed: a clash raises :class:`PortInUseError` at once.
* Peer 0 starts with ``--uri``; the others with ``--bootstrap`` pointing at peer 0 (and their
  own ``--uri``). A restarted peer gets neither flag: it resumes from its storage.
* Every process this module starts is stopped by :meth:`LocalCluster.stop_all` (SIGTERM, then
  SIGKILL after a grace period); use the cluster as a context manager so that happens in a
  ``finally``.
* Settings for every peer go in ``extra_env`` (``QDRANT__…`` variables, over the launcher's
  own environment); when either sets ``QDRANT__SERVICE__API_KEY`` the launcher's own queries
  (and ``refimpl cluster status``) present that key.
* ``<data_dir>/cluster.json`` lists the peers' REST URLs so ``refimpl cluster status`` can find
  a running cluster.

Theory of operation: plain ``subprocess`` and ``httpx`` (no trio) so that tests, the book and
the command line can all drive a cluster from ordinary synchronous code.
"""

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from refimpl.console import Console, run_console

__all__ = [
    "PORT_RETRIES",
    "LocalCluster",
    "PeerProcess",
    "PortInUseError",
    "cluster_status",
    "cluster_up",
    "ephemeral_port_range",
    "free_port",
    "render_table",
]


API_KEY_VARIABLE = "QDRANT__SERVICE__API_KEY"
P2P_SECRET_VARIABLE = "QDRANT__CLUSTER__P2P__SECRET"

# The peer's side of two conventions, kept here because importing refimpl.peer (trio, numpy)
# would cost every user of this module a second: refimpl.peer.cli.EXIT_PORT_IN_USE and the
# identity file of refimpl.peer.identity (tests check that both agree).
EXIT_PORT_IN_USE = 3
IDENTITY_FILE = "peer.json"

PORT_RETRIES = 3
"""How many times a peer whose port was taken is started again on fresh ports."""

LOWEST_PICKED_PORT = 10_000  # below it live well-known services (5432, 6333, 8080, ...)
HIGHEST_PORT = 65_535
IANA_EPHEMERAL = (49_152, 65_535)  # the ephemeral range where /proc does not tell (macOS, BSD)
_PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")

_given_ports: set[int] = set()
_given_lock = threading.Lock()


class PortInUseError(RuntimeError):
    """A peer cannot listen: another process holds its port (and no retry is left or allowed)."""


def ephemeral_port_range(path: Path = _PORT_RANGE_FILE) -> tuple[int, int]:
    """The kernel's range for ephemeral ports, both ends included (Linux: from ``path``)."""
    try:
        low, high = (int(field) for field in path.read_text().split())
    except (OSError, ValueError):
        return IANA_EPHEMERAL
    return (low, high) if 0 < low <= high <= HIGHEST_PORT else IANA_EPHEMERAL


def _pickable_ranges(ephemeral: tuple[int, int]) -> list[tuple[int, int]]:
    """Port ranges (inclusive) outside ``ephemeral``, preferring ports from 10 000 up."""
    low, high = ephemeral
    for floor in (LOWEST_PICKED_PORT, 1024):
        ranges = [(floor, low - 1), (max(floor, high + 1), HIGHEST_PORT)]
        ranges = [(a, b) for a, b in ranges if a <= b]
        if ranges:
            return ranges
    # The kernel keeps every port for itself: pick inside its range, the retries cover the race.
    return [(LOWEST_PICKED_PORT, HIGHEST_PORT)]


def _bindable(port: int, host: str = "127.0.0.1") -> bool:
    """True if a server could listen on ``host:port`` now (bound with SO_REUSEADDR, as ours)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(rng: random.Random | None = None) -> int:
    """A TCP port to listen on at 127.0.0.1: outside the kernel's ephemeral range, picked at
    random, bindable right now, and never returned before by this process.

    Outside the ephemeral range the kernel never gives the port to an outgoing connection (an
    httpx request of the test itself) or to another program's ``bind(port 0)``; at random, two
    test runs started together do not walk the same sequence.
    """
    pick = rng or random
    ranges = _pickable_ranges(ephemeral_port_range())
    weights = [b - a + 1 for a, b in ranges]
    for _ in range(1000):
        a, b = pick.choices(ranges, weights)[0]
        port = pick.randint(a, b)
        with _given_lock:
            if port in _given_ports or not _bindable(port):
                continue
            _given_ports.add(port)
        return port
    raise PortInUseError(f"no free port found in {ranges} after 1000 tries")


@dataclass(slots=True)
class PeerProcess:
    """One peer this launcher manages."""

    index: int
    http_port: int
    p2p_port: int
    storage: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    picked_ports: bool = True  # False: the caller chose them (base_port); never changed
    flags: tuple[str, ...] = ()  # of the last start, for a retry on fresh ports
    retries_left: int = PORT_RETRIES
    had_identity: bool = False  # its storage knew who it was before the last start
    log_offset: int = 0  # where the last start's output begins in ``log_path``

    @property
    def uri(self) -> str:
        """The p2p URI."""
        return f"http://127.0.0.1:{self.p2p_port}/"

    @property
    def rest_url(self) -> str:
        """The REST base URL."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self.process is not None and self.process.poll() is None


class LocalCluster:
    """Start, kill, restart and query peer processes."""

    def __init__(
        self,
        data_dir: Path,
        peers: int = 3,
        base_port: int | None = None,
        tick_period_ms: int = 100,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        assert peers >= 1
        self.data_dir = data_dir
        self.tick_period_ms = tick_period_ms
        self.extra_env = dict(extra_env or {})
        self.peers: list[PeerProcess] = []
        for i in range(peers):
            self.add_peer_slot(None if base_port is None else base_port + 10 * i)

    def add_peer_slot(self, http_port: int | None = None) -> PeerProcess:
        """Reserve ports and folders for one more peer (not started)."""
        i = len(self.peers)
        picked = http_port is None
        http = free_port() if http_port is None else http_port
        p2p = free_port() if picked else http + 2
        peer = PeerProcess(
            i, http, p2p, self.data_dir / f"peer-{i}", self.data_dir / f"peer-{i}.log", None, picked
        )
        self.peers.append(peer)
        return peer

    # ----------------------------------------------------------- processes

    def start(self, index: int, *flags: str) -> PeerProcess:
        """Start peer ``index`` with the given CLI flags (e.g. ``--uri``, ``--bootstrap``)."""
        peer = self.peers[index]
        assert not peer.running, f"peer {index} is already running"
        peer.flags, peer.retries_left = flags, PORT_RETRIES
        peer.had_identity = (peer.storage / IDENTITY_FILE).exists()
        self._spawn(peer)
        return peer

    def _spawn(self, peer: PeerProcess) -> None:
        """Start ``peer``'s process with its current ports and flags."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.extra_env,
               "REFIMPL_EXIT_WITH_PARENT": "1",
               "QDRANT__CLUSTER__ENABLED": "true",
               "QDRANT__SERVICE__HOST": "127.0.0.1",
               "QDRANT__SERVICE__HTTP_PORT": str(peer.http_port),
               "QDRANT__CLUSTER__P2P__PORT": str(peer.p2p_port),
               "QDRANT__CLUSTER__CONSENSUS__TICK_PERIOD_MS": str(self.tick_period_ms),
               "QDRANT__STORAGE__STORAGE_PATH": str(peer.storage)}  # fmt: skip
        command = [sys.executable, "-m", "refimpl.peer.cli", "peer", *peer.flags]
        with peer.log_path.open("ab") as log:
            peer.log_offset = log.tell()
            peer.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._write_cluster_file()

    def retry_port_clashes(self) -> None:
        """Start again, on fresh ports, each peer that exited because one of its ports was taken.

        Called on every poll of :meth:`wait_until`; raises :class:`PortInUseError` for a peer
        that cannot be moved (ports chosen by the caller, a p2p URI others know) or has no retry
        left.
        """
        for peer in self.peers:
            if peer.process is not None and peer.process.poll() == EXIT_PORT_IN_USE:
                self._restart_on_fresh_ports(peer)

    def _restart_on_fresh_ports(self, peer: PeerProcess) -> None:
        output = _tail(peer.log_path, offset=peer.log_offset)
        what = (f"peer {peer.index} (REST port {peer.http_port}, p2p port {peer.p2p_port}) "
                f"could not listen; it said: {output}")  # fmt: skip
        if not peer.picked_ports:
            raise PortInUseError(f"{what}; these ports were chosen by the caller (base_port, "
                                 "--base-port), so the launcher does not change them")  # fmt: skip
        if peer.retries_left <= 0:
            raise PortInUseError(f"{what}; gave up after {PORT_RETRIES} starts on fresh ports")
        # Only the ports held now change: a port freed again in the meantime is kept.
        if not _bindable(peer.p2p_port):
            self._move_p2p(peer, what)
        if not _bindable(peer.http_port):
            peer.http_port = free_port()
        peer.retries_left -= 1
        self._spawn(peer)

    def _move_p2p(self, peer: PeerProcess, what: str) -> None:
        """Give ``peer`` a fresh p2p port, if no other peer can know it by its old URI."""
        if peer.had_identity or _joined(peer.storage) is not False:
            raise PortInUseError(f"{what}; its p2p port is held, and the cluster knows this "
                                 f"peer as {peer.uri}, so it cannot move")  # fmt: skip
        # An identity the failed start wrote names the old URI and never reached anyone.
        (peer.storage / IDENTITY_FILE).unlink(missing_ok=True)
        old = peer.uri
        peer.p2p_port = free_port()
        for other in self.peers:
            if other is peer or _same_uri(old, *other.flags):
                self._rebootstrap(other, old, peer.uri, restart=other is not peer)

    def _rebootstrap(self, peer: PeerProcess, old: str, new: str, restart: bool) -> None:
        """Point ``peer``'s flags at ``new`` instead of ``old``; restart it if it is still
        trying to join through ``old`` (a peer that joined already is left alone)."""
        peer.flags = tuple(new if _same_uri(old, flag) else flag for flag in peer.flags)
        if not restart or peer.process is None:
            return
        if _joined(peer.storage) is not False:
            return
        if peer.running:
            peer.process.kill()
            peer.process.wait(timeout=10)
        self._spawn(peer)

    def start_first(self) -> PeerProcess:
        """Start peer 0 as the first peer of a new cluster."""
        return self.start(0, "--uri", self.peers[0].uri)

    def start_joiner(self, index: int, via: int = 0, with_uri: bool = True) -> PeerProcess:
        """Start peer ``index`` joining through peer ``via``."""
        flags = ["--bootstrap", self.peers[via].uri]
        if with_uri:
            flags += ["--uri", self.peers[index].uri]
        return self.start(index, *flags)

    def restart(self, index: int) -> PeerProcess:
        """Start a stopped peer again from its storage (no flags)."""
        return self.start(index)

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to peer ``index`` and wait for it to exit."""
        process = self.peers[index].process
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            process.wait(timeout=10)

    def stop_all(self, grace_s: float = 5.0) -> None:
        """SIGTERM every running peer, SIGKILL those still alive after ``grace_s``."""
        for peer in self.peers:
            if peer.running and peer.process is not None:
                peer.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for peer in self.peers:
            if peer.process is None:
                continue
            try:
                peer.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                peer.process.kill()
                peer.process.wait()

    def __enter__(self) -> "LocalCluster":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()

    def _write_cluster_file(self) -> None:
        peers = [{"index": p.index, "rest_url": p.rest_url, "uri": p.uri} for p in self.peers]
        (self.data_dir / "cluster.json").write_text(json.dumps({"peers": peers}, indent=1))

    # ------------------------------------------------------------- queries

    def cluster_info(self, index: int, timeout_s: float = 1.0) -> dict[str, Any] | None:
        """``GET /cluster`` of peer ``index`` (its ``result``), or None if it does not answer."""
        api_key = self.extra_env.get(API_KEY_VARIABLE, os.environ.get(API_KEY_VARIABLE))
        return fetch_cluster(self.peers[index].rest_url, timeout_s, api_key)

    def wait_until(self, what: str, predicate: Any, timeout_s: float = 30.0) -> Any:
        """Poll ``predicate()`` until it returns a truthy value; raise naming ``what``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.retry_port_clashes()
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        tails = {p.index: _tail(p.log_path) for p in self.peers}
        raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}; logs: {tails}")

    def leader(self, among: list[int] | None = None) -> int | None:
        """Index of the peer that reports itself Leader, if all running peers agree on it."""
        indexes = among if among is not None else [p.index for p in self.peers if p.running]
        infos = {i: self.cluster_info(i) for i in indexes}
        if any(info is None for info in infos.values()):
            return None
        leaders = {info["raft_info"]["leader"] for info in infos.values() if info}
        if len(leaders) != 1 or None in leaders:
            return None
        (leader_id,) = leaders
        for i, info in infos.items():
            if info and info["peer_id"] == leader_id and info["raft_info"]["role"] == "Leader":
                return i
        return None

    def wait_for_leader(self, among: list[int] | None = None, timeout_s: float = 30.0) -> int:
        """Wait until the running peers agree on a leader; return its index."""
        result: int = (
            self.wait_until("a leader", lambda: _plus_one(self.leader(among)), timeout_s) - 1
        )
        return result

    def wait_for_voters(
        self, count: int, among: list[int] | None = None, timeout_s: float = 30.0
    ) -> None:
        """Wait until every running peer (or ``among``) sees ``count`` voters and a leader."""

        def done() -> bool:
            indexes = among if among is not None else [p.index for p in self.peers if p.running]
            infos = [self.cluster_info(i) for i in indexes]
            return all(
                info is not None and len(info["raft_info"]["voters"]) == count
                and not info["raft_info"]["learners"] and info["raft_info"]["leader"] is not None
                for info in infos
            )  # fmt: skip

        self.wait_until(f"{count} voters", done, timeout_s)


def _plus_one(value: int | None) -> int | None:
    return None if value is None else value + 1


def _joined(storage: Path) -> bool | None:
    """Whether the peer with this storage joined (or founded) a cluster; False if it has no
    identity yet, None if its identity file cannot be read."""
    try:
        return bool(json.loads((storage / IDENTITY_FILE).read_text())["joined"])
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _same_uri(uri: str, *others: str) -> bool:
    """True if any of ``others`` is ``uri`` (with or without its trailing slash)."""
    return any(other.rstrip("/") == uri.rstrip("/") for other in others)


def fetch_cluster(
    rest_url: str, timeout_s: float = 1.0, api_key: str | None = None
) -> dict[str, Any] | None:
    """``GET {rest_url}/cluster`` → ``result``, or None if the peer does not answer."""
    headers = {"api-key": api_key} if api_key else None
    try:
        response = httpx.get(f"{rest_url}/cluster", timeout=timeout_s, headers=headers)
        result: dict[str, Any] = response.json()["result"]
        return result
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def _tail(path: Path, lines: int = 8, offset: int = 0) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# ----------------------------------------------------------------- table


def render_table(rows: list[dict[str, Any]]) -> str:
    """The cluster table: one line per peer."""
    header = ("peer id", "URI", "REST URL", "role", "term", "commit", "voter")
    lines = [header]
    for row in rows:
        info = row.get("info")
        if info is None:
            lines.append(("-", row["uri"], row["rest_url"], "down", "-", "-", "-"))
            continue
        raft = info["raft_info"]
        role = (
            raft["role"]
            if info["consensus_thread_status"]["consensus_thread_status"] == "working"
            else "removed"
        )
        lines.append((str(info["peer_id"]), row["uri"], row["rest_url"], role,
                      str(raft["term"]), str(raft["commit"]), "yes" if raft["is_voter"] else "no"))  # fmt: skip
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def fetch_placement(
    rest_url: str, timeout_s: float = 1.0, api_key: str | None = None
) -> dict[str, list[tuple[int, int, str]]]:
    """Every collection's replicas as ``(shard, peer id, state)``, from one peer's view."""
    headers = {"api-key": api_key} if api_key else None
    placement: dict[str, list[tuple[int, int, str]]] = {}
    try:
        listed = httpx.get(f"{rest_url}/collections", timeout=timeout_s, headers=headers)
        for collection in listed.json()["result"]["collections"]:
            name = collection["name"]
            url = f"{rest_url}/collections/{name}/cluster"
            info = httpx.get(url, timeout=timeout_s, headers=headers).json()["result"]
            rows = [(s["shard_id"], info["peer_id"], s["state"]) for s in info["local_shards"]]
            rows += [(s["shard_id"], s["peer_id"], s["state"]) for s in info["remote_shards"]]
            placement[name] = sorted(rows)
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return placement
    return placement


def render_placement(placement: dict[str, list[tuple[int, int, str]]]) -> str:
    """One line per shard: its replicas as ``peer:state``."""
    lines = []
    for name, rows in sorted(placement.items()):
        for shard in sorted({row[0] for row in rows}):
            replicas = ", ".join(f"{peer}:{state}" for s, peer, state in rows if s == shard)
            lines.append(f"{name} shard {shard}: {replicas}")
    return "\n".join(lines)


def _status_rows(data_dir: Path, api_key: str | None) -> list[dict[str, Any]]:
    peers = json.loads((data_dir / "cluster.json").read_text())["peers"]
    return [{**p, "info": fetch_cluster(p["rest_url"], api_key=api_key)} for p in peers]


def cluster_status(
    data_dir: Path, watch: bool = False, interval_s: float = 1.0, api_key: str | None = None
) -> int:
    """Print the table of the cluster recorded in ``data_dir`` (refreshing with ``watch``).

    ``api_key`` is presented to peers that require one (default: ``QDRANT__SERVICE__API_KEY``).
    """
    api_key = api_key if api_key is not None else os.environ.get(API_KEY_VARIABLE)
    if not (data_dir / "cluster.json").exists():
        print(
            f"error: no cluster recorded in {data_dir} (start one with `refimpl cluster up`)",
            file=sys.stderr,
        )
        return 1
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            rows = _status_rows(data_dir, api_key)
            table = render_table(rows)
            live = next((r["rest_url"] for r in rows if r.get("info")), None)
            if live is not None:
                shards = render_placement(fetch_placement(live, api_key=api_key))
                table += ("\n\n" + shards) if shards else ""
            if watch:
                print("\x1b[2J\x1b[H" + time.strftime("%H:%M:%S") + "\n" + table, flush=True)
                time.sleep(interval_s)
            else:
                print(table)
                return 0
    return 0


# -------------------------------------------------------------- cluster up


def _follow_logs(cluster: LocalCluster, stop: threading.Event) -> None:
    """Stream every peer's log file to stdout, prefixed with the peer's index."""
    offsets = {p.index: 0 for p in cluster.peers}
    while not stop.is_set():
        for peer in cluster.peers:
            with contextlib.suppress(OSError), peer.log_path.open("rb") as f:
                f.seek(offsets[peer.index])
                chunk = f.read()
                offsets[peer.index] += len(chunk)
                for line in chunk.decode(errors="replace").splitlines():
                    print(f"[peer {peer.index}] {line}", flush=True)
        stop.wait(0.2)


def cluster_up(
    peers: int,
    base_port: int,
    data_dir: Path,
    tick_period_ms: int = 100,
    *,
    api_key: str | None = None,
    p2p_secret: str | None = None,
) -> int:
    """Start ``peers`` peers, print the table, stream logs until Ctrl-C or SIGTERM.

    ``api_key`` (REST) and ``p2p_secret`` (the p2p port) are given to every peer, through the
    same ``QDRANT__…`` variables a user would set; neither is printed.
    """
    env = {API_KEY_VARIABLE: api_key, P2P_SECRET_VARIABLE: p2p_secret}
    stop = threading.Event()
    # Explicit handlers: a launcher started in the background inherits SIGINT as ignored.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    extra_env = {name: value for name, value in env.items() if value}
    with LocalCluster(data_dir, peers, base_port, tick_period_ms, extra_env) as cluster:
        fresh = [not (p.storage / IDENTITY_FILE).exists() for p in cluster.peers]
        for peer, is_fresh in zip(cluster.peers, fresh, strict=True):
            if not is_fresh:
                cluster.restart(peer.index)
            elif peer.index == 0:
                cluster.start_first()
            else:
                cluster.start_joiner(peer.index)
        print(f"starting {peers} peers in {data_dir}/ ...", flush=True)
        try:
            cluster.wait_for_voters(peers, timeout_s=60)
        except (TimeoutError, PortInUseError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(render_table(_status_rows(data_dir, api_key)), flush=True)
        print("cluster is up; Ctrl-C stops every peer. `refimpl cluster status --watch` "
              "in another terminal shows it live.\nType a command and Enter to hurt a peer or "
              "bring it back: kill N, pause N, resume N, restart N, status, help.", flush=True)  # fmt: skip
        follower = threading.Thread(target=_follow_logs, args=(cluster, stop), daemon=True)
        follower.start()
        console = Console(cluster, lambda text: print(text, flush=True),
                          lambda: render_table(_status_rows(data_dir, api_key)))  # fmt: skip
        commands = threading.Thread(target=run_console, args=(console, sys.stdin, stop),
                                    daemon=True)  # fmt: skip
        commands.start()
        while not stop.is_set():
            stop.wait(0.5)
            console.report_exits()
        print("stopping peers ...", flush=True)
    return 0
