"""Chaos against real peer processes: SIGKILL, restart, SIGSTOP/SIGCONT while clients write.

Rules:

* 3–5 peers on 127.0.0.1 (:class:`refimpl.launcher.LocalCluster`). One peer at a time is hit
  (fewer failures than replicas and than a Raft majority): SIGKILL then restart from its storage,
  or SIGSTOP then SIGCONT. The run is bounded in faults and in wall time.
* Clients talk to random peers (any peer answers any request, spec "Distributed deployment"):
  - a *collection* client creates and deletes a few collection names through consensus; each
    name is a register (absent / present). Its history goes to the linearizability checker of
    :mod:`refimpl.testing.linearizability`: a create answered ``true`` is a cas(absent→present), a
    delete answered ``true`` a cas(present→absent); a refusal changed nothing (``fail``); a
    timeout, a dropped connection or a 5xx may or may not have happened (``info``).
  - a *point* writer upserts points (``wait=true``) into a collection with
    ``replication_factor`` 2 and ``write_consistency_factor`` 2; a 200 is an acknowledged write.
  - a *reader* retrieves acknowledged points during the faults (answers are counted).
* At the end every fault is healed, and every acknowledged point must be readable through
  every peer: ``lost`` must be 0, and the collection history must be linearizable.

Theory of operation: clients are threads doing blocking ``httpx`` calls with bounded timeouts;
the main thread injects faults on a seeded schedule. ``bench/bench_chaos.py`` is the command
line (``--quick`` is the short run ``tests/reliability`` and the book use).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from refimpl.launcher import LocalCluster
from refimpl.testing.linearizability import CheckResult, History, KvOp, OpKind, check_history

__all__ = ["ChaosOptions", "ChaosReport", "run_chaos"]

POINTS = "chaos_points"
DIM = 4
PRESENT = "present"
REQUEST_TIMEOUT_S = 10.0
"""Generous: on a loaded 2-core machine a write through consensus can take seconds."""


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    """The size of one run."""

    peers: int = 3
    faults: int = 8
    duration_s: float = 300.0
    """A safety bound on the fault phase (the fault count is the normal bound)."""
    seed: int = 7
    tick_period_ms: int = 50
    collection_names: int = 2


@dataclass
class ChaosReport:
    """What a run did and found."""

    operations: int = 0
    faults: list[str] = field(default_factory=list)
    acknowledged_writes: int = 0
    unacknowledged_writes: int = 0
    reads_answered: int = 0
    reads_failed: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    """Why writes were not acknowledged (HTTP status or exception), a count each."""
    server_errors: list[str] = field(default_factory=list)
    """The first few 5xx messages. As in Qdrant, a write that too few replicas acknowledged is
    a 500 ("only 1 of the required 2 replicas acknowledged"): not acknowledged, may be applied."""
    lost: list[int] = field(default_factory=list)
    collection_ops: int = 0
    linearizability: str = "not checked"
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Nothing lost and the collection history linearizable."""
        return not self.lost and self.linearizability == CheckResult.LINEARIZABLE.value

    def lines(self) -> list[str]:
        """A printable summary."""
        return [
            f"operations: {self.operations} in {self.elapsed_s:.1f} s",
            f"faults: {len(self.faults)} ({', '.join(self.faults)})",
            f"acknowledged writes: {self.acknowledged_writes} "
            f"(+{self.unacknowledged_writes} not acknowledged: {self.refusals})",
            f"reads during faults: {self.reads_answered} answered, {self.reads_failed} failed",
            f"collection operations: {self.collection_ops}, history {self.linearizability}",
            f"lost: {len(self.lost)}",
        ]


class Clients:
    """The three client threads and what they recorded."""

    def __init__(self, cluster: LocalCluster, options: ChaosOptions) -> None:
        self.cluster = cluster
        self.options = options
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.history = History()
        self.report = ChaosReport()
        self.acked: list[int] = []

    def url(self, rng: random.Random) -> str:
        return rng.choice(self.cluster.peers).rest_url

    def count(self) -> None:
        with self.lock:
            self.report.operations += 1

    def collection_client(self) -> None:
        """Create/delete a few names; record each as a cas on a register."""
        rng = random.Random(self.options.seed * 31 + 1)
        process = 0
        while not self.stop.is_set():
            name = f"chaos_c{rng.randrange(self.options.collection_names)}"
            create = rng.random() < 0.5
            op = KvOp(OpKind.CAS, name, PRESENT if create else None, None if create else PRESENT)
            with self.lock:
                op_id = self.history.invoke(process, op)
            outcome = _collection_call(self.url(rng), name, create)
            with self.lock:
                if outcome is True:
                    self.history.ok(op_id, True)
                elif outcome is False:
                    self.history.fail(op_id)
                else:
                    self.history.info(op_id)
                    process += 1  # a Jepsen client with an open operation is a new process
                self.report.collection_ops += 1
            self.count()

    def point_writer(self) -> None:
        """Upsert one new point at a time with wait=true; a 200 is an acknowledgement."""
        rng = random.Random(self.options.seed * 31 + 2)
        next_id = 1
        while not self.stop.is_set():
            point = {"id": next_id, "vector": [rng.random() for _ in range(DIM)],
                     "payload": {"n": next_id}}  # fmt: skip
            path = f"/collections/{POINTS}/points?wait=true"
            report = self.report
            ok = _call(self.url(rng), "PUT", path, {"points": [point]},
                       why=report.refusals, errors=report.server_errors)  # fmt: skip
            with self.lock:
                if ok is not None:
                    self.acked.append(next_id)
                    self.report.acknowledged_writes += 1
                else:
                    self.report.unacknowledged_writes += 1
            next_id += 1
            self.count()

    def reader(self) -> None:
        """Read back a few acknowledged points through random peers while faults happen."""
        rng = random.Random(self.options.seed * 31 + 3)
        while not self.stop.is_set():
            with self.lock:
                ids = rng.sample(self.acked, min(5, len(self.acked)))
            answer = _call(self.url(rng), "POST", f"/collections/{POINTS}/points", {"ids": ids})
            with self.lock:
                if answer is not None:
                    self.report.reads_answered += 1
                else:
                    self.report.reads_failed += 1
            self.count()
            time.sleep(0.05)


_CLIENTS = threading.local()


def _client() -> httpx.Client:
    """This thread's HTTP client (building one per request costs a TLS context each time)."""
    client: httpx.Client | None = getattr(_CLIENTS, "client", None)
    if client is None:
        client = _CLIENTS.client = httpx.Client(timeout=REQUEST_TIMEOUT_S)
    return client


def _closing_client(work: Callable[[], None]) -> Callable[[], None]:
    """``work``, then close the thread's HTTP client."""

    def run() -> None:
        try:
            work()
        finally:
            _close_client()

    return run


def _close_client() -> None:
    client = getattr(_CLIENTS, "client", None)
    if client is not None:
        client.close()
        _CLIENTS.client = None


def _call(
    base_url: str,
    method: str,
    path: str,
    body: Any,
    *,
    why: dict[str, int] | None = None,
    errors: list[str] | None = None,
) -> Any:
    """The ``result`` of a 200 answer, else None (error, timeout, refused connection); the
    reason for a None is counted in ``why`` (HTTP status or exception name)."""
    try:
        response = _client().request(method, base_url + path, json=body)
    except httpx.HTTPError as exc:
        reason = type(exc).__name__
    else:
        if response.status_code == 200:
            return response.json().get("result")
        reason = str(response.status_code)
        if response.status_code >= 500 and errors is not None and len(errors) < 5:
            errors.append(f"{method} {path}: {response.status_code} {response.text[:300]}")
    if why is not None:
        why[reason] = why.get(reason, 0) + 1
    return None


def _collection_call(base_url: str, name: str, create: bool) -> bool | None:
    """True: the operation took effect; False: it surely did not; None: unknown."""
    url = f"{base_url}/collections/{name}"
    try:
        if create:
            body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 1}
            response = _client().put(url, json=body)
        else:
            response = _client().delete(url)
    except httpx.ConnectError:
        return False  # nothing reached the peer
    except httpx.HTTPError:
        return None  # sent, answer lost: it may still be applied
    if response.status_code == 200:
        return response.json().get("result") is True
    # 4xx: refused by validation or by the applied state (already exists / no such collection).
    return False if response.status_code < 500 else None


def inject_faults(cluster: LocalCluster, options: ChaosOptions, report: ChaosReport) -> None:
    """One fault at a time on a random peer, each followed by its repair."""
    rng = random.Random(options.seed)
    deadline = time.monotonic() + options.duration_s
    for _ in range(options.faults):
        if time.monotonic() > deadline:
            break
        time.sleep(rng.uniform(1.0, 3.0))  # some fault-free time: writes need every replica
        victim = rng.randrange(len(cluster.peers))
        process = cluster.peers[victim].process
        assert process is not None
        if rng.random() < 0.5:
            cluster.kill(victim, signal.SIGKILL)
            time.sleep(rng.uniform(0.5, 2.0))
            cluster.restart(victim)
            report.faults.append(f"kill {victim}")
        else:
            process.send_signal(signal.SIGSTOP)
            time.sleep(rng.uniform(0.5, 2.0))
            process.send_signal(signal.SIGCONT)
            report.faults.append(f"pause {victim}")
        # Let the cluster settle (a leader and the victim back) before the next fault.
        cluster.wait_for_leader(timeout_s=60)


def final_check(cluster: LocalCluster, acked: list[int]) -> list[int]:
    """Every acknowledged id must be readable through every peer; return the missing ones."""
    missing: set[int] = set()
    for peer in cluster.peers:

        def everything_there(url: str = peer.rest_url) -> list[int] | None:
            found = _call(url, "POST", f"/collections/{POINTS}/points", {"ids": acked})
            if found is None:
                return None
            return [i for i in acked if i not in {p["id"] for p in found}]

        # Give a restarted replica time to catch up (it recovers from its peers).
        deadline = time.monotonic() + 60
        gone = everything_there()
        while (gone is None or gone) and time.monotonic() < deadline:
            time.sleep(0.5)
            gone = everything_there()
        missing.update(acked if gone is None else gone)
    return sorted(missing)


def run_chaos(options: ChaosOptions, data_dir: Path) -> ChaosReport:
    """Start a cluster, run clients and faults, heal, check; the cluster is always stopped."""
    started = time.monotonic()
    try:
        report = _run_chaos(options, data_dir)
    finally:
        _close_client()
    report.elapsed_s = time.monotonic() - started
    return report


def _run_chaos(options: ChaosOptions, data_dir: Path) -> ChaosReport:
    with LocalCluster(data_dir, peers=options.peers, tick_period_ms=options.tick_period_ms) as cl:
        cl.start_first()
        for i in range(1, options.peers):
            cl.start_joiner(i)
        cl.wait_for_voters(options.peers, timeout_s=90)
        body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 2,
                "replication_factor": 2, "write_consistency_factor": 2}  # fmt: skip
        created = _call(cl.peers[0].rest_url, "PUT", f"/collections/{POINTS}", body)
        assert created is True, "could not create the chaos collection"
        clients = Clients(cl, options)
        work = (clients.collection_client, clients.point_writer, clients.reader)
        threads = [threading.Thread(target=_closing_client(w), daemon=True) for w in work]
        for t in threads:
            t.start()
        try:
            inject_faults(cl, options, clients.report)
        finally:
            clients.stop.set()
            for t in threads:
                t.join(timeout=30)
        report = clients.report
        cl.wait_for_voters(options.peers, timeout_s=60)
        report.lost = final_check(cl, list(clients.acked))
        report.linearizability = check_history(clients.history).result.value
    return report
