"""Benchmark: REST ingest through a 3-peer cluster, against building the same shards in-process.

Run ``python bench/bench_ingest.py`` (100 000 x 128 points, both readings below; 7-8 minutes
on two shared cores, nearly all of it the index reading's graph building) or ``--quick``
(10 000 points, 50 queries, under a minute). ``--repeat N`` runs each side N times per reading
(in-process and REST alternately, so both see the same load) and reports medians: single runs
swing with the machine's load. ``--reading index`` or ``--reading storage`` runs one only.

Two readings, because the same 100 000 points mean two very different workloads:

* **index**: the collection's ``indexing_threshold`` is 1 kB, so every shard switches to an
  HNSW graph after its first few points and then inserts every point into the graph as it
  arrives, on both sides. This is the issue's "building the same index"; the graph work (pure
  numpy, :class:`refimpl.index.HnswIndex`) dominates both sides.
* **storage only**: Qdrant's default ``indexing_threshold`` (10 000 kB = 20 000 points per shard
  at 128 dims), so with 100 000 points over 6 shards no shard builds a graph: a batch is
  validated, logged (WAL, fsynced: ``wait=true``) and stored. The in-process side is then mostly
  waiting on fsync, and the REST figure lays bare what the cluster adds (HTTP, JSON, p2p, trio).

What each side does, and what is printed for each reading:

* **in-process build**: the points split by the hash ring over ``--shards`` shard stores
  (:class:`refimpl.storage.ShardStore` on disk, the same config a peer uses, ``wait=true``
  so every batch is fsynced), fed batch by batch in this process: points/s;
* **REST ingest**: the same batches of 256 points as ``PUT /collections/{name}/points?wait=true``
  bodies (column-wise ``batch`` form), sent by ``--clients`` concurrent HTTP clients spread over
  the peers of a local cluster of real processes (``replication_factor`` 1): points/s, and its
  ratio to the in-process rate (the issue's target is at least 0.5). The REST side can exceed
  1: its three peers build their shards' graphs in parallel on the machine's cores, while the
  in-process build runs on one;
* **CPU per batch**: the CPU time (user + system) each side spends per batch of 256 points:
  this process for the in-process build, each peer process (from ``/proc``) for the REST
  ingest. It depends less on what else the machine runs than the rates do, and it tells the
  work (JSON, HTTP, p2p, validation, graph inserts) from the waiting (fsync);
* **query latency**: top-10, p50 and p99 over ``--queries`` queries, with default parameters
  and with ``exact=true``: ``POST …/points/query`` through REST, and the same six shard stores
  searched in turn in this process for reference;
* the load average before and after each run: on a shared machine the rates swing with it.

Where the REST time goes in the storage-only reading (issue 6, the peers sampled with py-spy
during the ingest): the in-process build is mostly waiting on fsync (about 6 ms of CPU in a
20-40 ms batch), while the cluster spends several times that CPU per batch, spread thin: trio's
scheduling and thread hand-offs about a third, HTTP (hypercorn and Starlette) an eighth, the
JSON decode of the body a tenth (the standard library's ``json.loads`` was most of the cost
before ``orjson``), serving and sending p2p requests a seventh (then a new TCP connection for
each: they now reuse pooled persistent connections, see :mod:`refimpl.peer.tcp`), validation
and splitting a tenth, the shard stores' own work (the same as in-process) under a tenth, Raft
ticks the rest.

Where the index reading's extra CPU went (issue 6): the peers spent 1.2-1.5x the in-process
CPU per batch for the same graph inserts. py-spy showed the Python side of the inserts costing
the peers about what it costs in-process; the extra was OpenBLAS again, outside Python. The
index limits BLAS to one thread (:func:`refimpl.index.blas.one_blas_thread`), but
threadpoolctl lets only the first thread that sets a limit change OpenBLAS's process-wide pool
and silently ignores the others; in a peer that was one worker thread among several, so most
inserts (and queries) could run threaded BLAS. The limit now hands control to the thread that
changes it and is counted across threads; the peers' CPU per batch fell to about the
in-process figure plus the storage-only overhead (the default run, 100 000 points: 1.21x
in-process before, 1.01x after; six quick runs each on a loaded machine: 1.16-1.43x before,
0.96-1.13x after). Suspects that were not it: the HNSW checkpoints (2 % of the peers' samples,
4 % in-process: the same operations on both sides) and the niced shard threads.

Storage only, the peers' CPU per batch on the same loaded machine, medians of 8-12 runs of
30 000 points: 27.6 ms before, 24.1 ms after two changes that only helped together: the
upsert body is decoded, checked and split in one worker thread (it was two hand-offs:
:mod:`refimpl.api.data` decoded, :meth:`refimpl.peer.router.Router.upsert` parsed), and only
graph work runs niced (:func:`refimpl.peer.shards.works_a_graph`; a niced thread stays niced
for the body decodes the thread cache gives it later). Each alone: no measurable change.

The cluster is started before the first in-process run and idles meanwhile (about 1 % of a
core per peer: Raft ticks).

Where the query time went: at 100 000 points a top-10 through REST took 150-300 ms while the
same six shard stores answer in-process in under 10 ms. Almost all of it was OpenBLAS: each
peer process let it use every core for the one matrix-vector product of an exact search, and
with three peers on a loaded two-core machine its threads spent their time waking and spinning
(one 16 700 x 128 shard: about 25 ms threaded, under 2 ms on one thread).
:meth:`refimpl.storage.ShardStore.search_top` now runs the index with one BLAS thread.
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from refimpl.consensus import CollectionConfig, Distance, VectorParams
from refimpl.ids import ShardId
from refimpl.launcher import LocalCluster
from refimpl.peer.router import split_by_shard
from refimpl.peer.shards import shard_config
from refimpl.points import QueryRequest, UpsertPoints, merge_scored
from refimpl.sharding import HashRing
from refimpl.storage import ShardStore

BATCH = 256
READINGS = {"index": 1, "storage": 10_000}
"""Each reading's ``indexing_threshold`` in kB: 1 kB makes every shard build its HNSW graph
from its first points on; 10 000 kB is Qdrant's default (no graph below 20 000 points a shard
at 128 dims)."""
TITLES = {
    "index": "index (every shard builds its HNSW graph as the points arrive)",
    "storage": "storage only (Qdrant's default indexing_threshold: no graph, WAL + points)",
}


@dataclass
class Run:
    """One side's figures for one run of one reading."""

    rate: float
    cpu_ms: list[float]
    """CPU per batch: one entry in-process, one per peer through REST."""
    wall_ms: float
    load: tuple[float, float]
    """Load average (1 min) before and after."""
    queries: dict[bool, tuple[float, float]] = field(default_factory=dict)
    """p50 and p99 in ms, by ``exact``."""


def make_batches(n: int, dim: int, seed: int) -> list[UpsertPoints]:
    rng = np.random.default_rng(seed)
    batches = []
    for start in range(0, n, BATCH):
        count = min(BATCH, n - start)
        vectors = rng.normal(size=(count, dim)).astype(np.float32)
        payloads = tuple({"n": i, "group": i % 10} for i in range(start, start + count))
        batches.append(UpsertPoints(tuple(range(start, start + count)), vectors, payloads))
    return batches


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Vector = np.ndarray[Any, Any]


def latency(call: Callable[[Vector], None], dim: int, queries: int) -> tuple[float, float]:
    """p50 and p99 in ms of ``call`` over ``queries`` random query vectors (seeded)."""
    rng = np.random.default_rng(7)
    times = []
    for _ in range(queries):
        vector = rng.normal(size=dim).astype(np.float32)
        started = time.perf_counter()
        call(vector)
        times.append(time.perf_counter() - started)
    return float(np.percentile(times, 50)) * 1000, float(np.percentile(times, 99)) * 1000


def in_process(
    batches: list[UpsertPoints], config: CollectionConfig, root: Path, queries: int
) -> Run:
    """Feed the shard stores directly (what one peer would do for all shards)."""
    ring = HashRing([ShardId(s) for s in range(config.shard_number)])
    stores = [
        ShardStore.open(root / f"shard-{s}", shard_config(config))
        for s in range(config.shard_number)
    ]
    load = os.getloadavg()[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    for batch in batches:
        for shard_id, part in split_by_shard(batch, ring).items():
            stores[shard_id].apply(part, wait=True)
    elapsed = time.perf_counter() - started
    cpu_ms = (time.process_time() - cpu_started) * 1000 / len(batches)
    run = Run(
        sum(len(b.ids) for b in batches) / elapsed, [cpu_ms], elapsed * 1000 / len(batches),
        (load, os.getloadavg()[0]),
    )  # fmt: skip
    for exact in (False, True):
        # The reference for the REST query latency: every shard store searched in turn and
        # the hits merged, in this process (no HTTP, no p2p, no JSON, no threads).
        def query(vector: Vector, exact: bool = exact) -> None:
            request = QueryRequest(vector, limit=10, exact=exact)
            assert len(merge_scored([s.search(request) for s in stores], 10, 0, True)) == 10

        run.queries[exact] = latency(query, config.vectors.size, queries)
    for store in stores:
        store.close()
    return run


def body_of(batch: UpsertPoints) -> dict[str, Any]:
    return {
        "batch": {
            "ids": list(batch.ids),
            "vectors": batch.vectors.tolist(),
            "payloads": list(batch.payloads),
        }
    }


def rest_ingest(cluster: LocalCluster, name: str, bodies: list[bytes], clients: int) -> float:
    """Seconds to send ``bodies`` as upserts with ``clients`` senders over the peers."""
    errors: list[str] = []

    def sender(k: int) -> None:
        url = cluster.peers[k % len(cluster.peers)].rest_url
        with httpx.Client(base_url=url, timeout=120) as http:
            for body in bodies[k::clients]:
                response = http.put(
                    f"/collections/{name}/points?wait=true", content=body,
                    headers={"content-type": "application/json"},
                )  # fmt: skip
                if response.status_code != 200:
                    errors.append(response.text)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    assert not errors, errors[:3]
    return elapsed


def through_rest(
    cluster: LocalCluster, args: argparse.Namespace, name: str, threshold_kb: int,
    bodies: list[bytes],
) -> Run:  # fmt: skip
    """Create collection ``name``, ingest ``bodies`` into it through REST, query it, drop it."""
    rest = cluster.peers[0].rest_url
    body = {
        "vectors": {"size": args.dim, "distance": "Cosine"},
        "shard_number": args.shards,
        "optimizers_config": {"indexing_threshold": threshold_kb},
    }
    response = httpx.put(f"{rest}/collections/{name}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    pids = [p.process.pid for p in cluster.peers if p.process is not None]
    load = os.getloadavg()[0]
    cpu_before = [process_cpu_s(pid) for pid in pids]
    elapsed = rest_ingest(cluster, name, bodies, args.clients)
    cpu_ms = [
        (process_cpu_s(pid) - c) * 1000 / len(bodies)
        for pid, c in zip(pids, cpu_before, strict=True)
    ]
    run = Run(args.points / elapsed, cpu_ms, elapsed * 1000 / len(bodies),
              (load, os.getloadavg()[0]))  # fmt: skip
    count = httpx.post(f"{cluster.peers[1].rest_url}/collections/{name}/points/count",
                       json={}, timeout=60).json()["result"]["count"]  # fmt: skip
    assert count == args.points, count
    with httpx.Client(base_url=rest, timeout=60) as http:
        for exact in (False, True):

            def query(vector: Vector, exact: bool = exact) -> None:
                body = {"query": vector.tolist(), "limit": 10, "params": {"exact": exact}}
                response = http.post(f"/collections/{name}/points/query", json=body)
                assert response.status_code == 200, response.text

            run.queries[exact] = latency(query, args.dim, args.queries)
    response = httpx.delete(f"{rest}/collections/{name}", timeout=120)
    assert response.status_code == 200, response.text
    return run


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def show_run(reading: str, k: int, local: Run, rest: Run) -> None:
    peers = " + ".join(f"{c:.1f}" for c in rest.cpu_ms)
    print(f"{reading} run {k}: in-process {local.rate:,.0f} points/s, "
          f"CPU {local.cpu_ms[0]:.1f} ms/batch (load {local.load[0]:.1f}->{local.load[1]:.1f})"
          f" | REST {rest.rate:,.0f} points/s, "
          f"CPU {sum(rest.cpu_ms):.1f} ms/batch ({peers}) (load {rest.load[0]:.1f}->"
          f"{rest.load[1]:.1f}) | ratio {rest.rate / local.rate:.2f}", flush=True)  # fmt: skip


def summary(reading: str, args: argparse.Namespace, local: list[Run], rest: list[Run]) -> None:
    """The medians of one reading's runs."""
    n = len(local)
    print(f"{TITLES[reading]}: {args.points} x {args.dim}, {args.shards} shards, "
          f"median of {n} run{'s' * (n > 1)}")  # fmt: skip
    local_rate, rest_rate = median([r.rate for r in local]), median([r.rate for r in rest])
    ratios = sorted(r.rate / lo.rate for r, lo in zip(rest, local, strict=True))
    spread = f" (runs {ratios[0]:.2f}-{ratios[-1]:.2f})" if n > 1 else ""
    local_cpu = median([r.cpu_ms[0] for r in local])
    rest_cpu = median([sum(r.cpu_ms) for r in rest])
    per_peer = [median([r.cpu_ms[p] for r in rest]) for p in range(len(rest[0].cpu_ms))]
    print(f"  in-process build: {local_rate:,.0f} points/s; CPU per batch {local_cpu:.1f} ms "
          f"(wall {median([r.wall_ms for r in local]):.1f} ms)")  # fmt: skip
    print(f"  REST ingest ({args.peers} peers, {args.clients} clients): {rest_rate:,.0f} "
          f"points/s; CPU per batch {rest_cpu:.1f} ms over the peers "
          f"({', '.join(f'{c:.1f}' for c in per_peer)}), "
          f"{rest_cpu / local_cpu:.2f}x in-process "
          f"(wall {median([r.wall_ms for r in rest]):.1f} ms)")  # fmt: skip
    print(f"  REST / in-process ratio: {rest_rate / local_rate:.2f}{spread} (target >= 0.5)")
    for exact in (False, True):
        side = [(s, [r.queries[exact] for r in runs]) for s, runs in (("REST", rest),
                ("in-process", local))]  # fmt: skip
        text = ", ".join(
            f"{s} p50 {median([q[0] for q in qs]):.1f} ms, p99 {median([q[1] for q in qs]):.1f} ms"
            for s, qs in side
        )
        print(f"  query top-10 (exact={exact}): {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 000 points, 50 queries")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--peers", type=int, default=3)
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side per reading")
    parser.add_argument("--reading", choices=["both", *READINGS], default="both")
    args = parser.parse_args()
    if args.quick:
        args.points, args.queries = 10_000, 50
    readings = list(READINGS) if args.reading == "both" else [args.reading]
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    batches = make_batches(args.points, args.dim, seed=1)
    # Encoded up front: we time the cluster, not this process's JSON encoder.
    bodies = [json.dumps(body_of(b)).encode() for b in batches]
    runs: dict[str, tuple[list[Run], list[Run]]] = {r: ([], []) for r in readings}
    with (
        tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp,
        LocalCluster(Path(tmp) / "cluster", peers=args.peers, tick_period_ms=100) as cluster,
    ):
        cluster.start_first()
        for i in range(1, args.peers):
            cluster.start_joiner(i)
        cluster.wait_for_voters(args.peers, timeout_s=120)
        for k in range(1, args.repeat + 1):
            for reading in readings:
                threshold = READINGS[reading]
                config = CollectionConfig(
                    VectorParams(args.dim, Distance.Cosine), shard_number=args.shards,
                    indexing_threshold_kb=threshold,
                )  # fmt: skip
                local_root = Path(tmp) / f"local-{reading}-{k}"
                local = in_process(batches, config, local_root, args.queries)
                shutil.rmtree(local_root)
                rest = through_rest(cluster, args, f"bench-{reading}-{k}", threshold, bodies)
                show_run(reading, k, local, rest)
                runs[reading][0].append(local)
                runs[reading][1].append(rest)
    for reading in readings:
        summary(reading, args, *runs[reading])
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
