"""Benchmark: REST ingest through a 3-peer cluster, against building the same shards in-process.

Run ``python bench/bench_ingest.py`` (100 000 x 128 points; several minutes on a small machine)
or ``--quick`` (10 000 points). What it measures, in one run on one machine:

* **in-process build**: the points split by the hash ring over ``--shards`` shard stores
  (:class:`refimpl.storage.ShardStore` on disk, the same config a peer uses, ``wait=true``
  so every batch is fsynced), fed batch by batch in this process: points/s;
* **REST ingest**: the same batches of 256 points as ``PUT /collections/{name}/points?wait=true``
  bodies (column-wise ``batch`` form), sent by ``--clients`` concurrent HTTP clients spread over
  the peers of a local cluster of real processes (``replication_factor`` 1): points/s, and its
  ratio to the in-process rate (the issue's target is at least 0.5);
* **query latency through REST**: ``POST …/points/query`` top-10, p50 and p99 over
  ``--queries`` queries, with default parameters and with ``exact=true``;
* **CPU per batch**: the CPU time (user + system) each side spends per batch of 256 points:
  this process for the in-process build, each peer process (from ``/proc``) for the REST
  ingest. It depends less on what else the machine runs than the rates do, and it tells the
  work (JSON, HTTP, p2p, validation) from the waiting (fsync: most of the in-process time).

Where the REST time goes (issue 6, the peers sampled with py-spy during the ingest): the
in-process build is mostly waiting on fsync (about 6 ms of CPU in a 20-40 ms batch), while the
cluster spends several times that CPU per batch, spread thin: trio's scheduling and thread
hand-offs about a third, HTTP (hypercorn and Starlette) an eighth, the JSON decode of the body
a tenth (the standard library's ``json.loads`` was most of the cost before ``orjson``), serving
and sending p2p requests a seventh (then a new TCP connection for each: they now reuse pooled
persistent connections, see :mod:`refimpl.peer.tcp`), validation and splitting a tenth, the
shard stores' own work (the same as in-process) under a tenth, Raft ticks the rest. On a
shared machine the rates swing with its load: compare medians of several runs.

Where the query time went: at 100 000 points a top-10 through REST took 150-300 ms while the
same six shard stores answer in-process in under 10 ms. Almost all of it was OpenBLAS: each
peer process let it use every core for the one matrix-vector product of an exact search, and
with three peers on a loaded two-core machine its threads spent their time waking and spinning
(one 16 700 x 128 shard: about 25 ms threaded, under 2 ms on one thread).
:meth:`refimpl.storage.ShardStore.search_top` now runs the index with one BLAS thread.

The collection uses Qdrant's default ``indexing_threshold`` (10 000 kB) unless
``--indexing-threshold`` says otherwise; at 128 dims that is 20 000 points per shard, so
100 000 points over 6 shards stay on exact search unless you lower it (then both sides build
HNSW graphs, which is much slower in this pure-numpy index). The figures depend on the load of
the machine: the script prints the load average next to them.
"""

import argparse
import json
import os
import tempfile
import threading
import time
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


def in_process(
    batches: list[UpsertPoints], config: CollectionConfig, root: Path, queries: int
) -> float:
    """Points/s of feeding the shard stores directly (what one peer would do for all shards)."""
    ring = HashRing([ShardId(s) for s in range(config.shard_number)])
    stores = [
        ShardStore.open(root / f"shard-{s}", shard_config(config))
        for s in range(config.shard_number)
    ]
    started, cpu_started = time.perf_counter(), time.process_time()
    for batch in batches:
        for shard_id, part in split_by_shard(batch, ring).items():
            stores[shard_id].apply(part, wait=True)
    elapsed = time.perf_counter() - started
    cpu_ms = (time.process_time() - cpu_started) * 1000 / len(batches)
    print(
        f"in-process CPU per batch: {cpu_ms:.1f} ms (wall {elapsed * 1000 / len(batches):.1f} ms)"
    )
    rate = sum(len(b.ids) for b in batches) / elapsed
    for exact in (False, True):
        p50, p99 = local_query_latency(stores, config.vectors.size, queries, exact)
        print(f"query top-10 in-process over the {len(stores)} shard stores (exact={exact}): "
              f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip
    for store in stores:
        store.close()
    return rate


def local_query_latency(
    stores: list[ShardStore], dim: int, queries: int, exact: bool
) -> tuple[float, float]:
    """The reference for the REST query latency: every shard store searched in turn and the
    hits merged, in this process (no HTTP, no p2p, no JSON, no threads)."""
    rng = np.random.default_rng(7)
    times = []
    for _ in range(queries):
        request = QueryRequest(rng.normal(size=dim).astype(np.float32), limit=10, exact=exact)
        started = time.perf_counter()
        hits = merge_scored([s.search(request) for s in stores], 10, 0, True)
        times.append(time.perf_counter() - started)
        assert len(hits) == 10
    return float(np.percentile(times, 50)) * 1000, float(np.percentile(times, 99)) * 1000


def body_of(batch: UpsertPoints) -> dict[str, Any]:
    return {
        "batch": {
            "ids": list(batch.ids),
            "vectors": batch.vectors.tolist(),
            "payloads": list(batch.payloads),
        }
    }


def rest_ingest(cluster: LocalCluster, batches: list[UpsertPoints], clients: int) -> float:
    """Points/s of the same batches through REST, ``clients`` senders over the peers."""
    # Encoded up front: we time the cluster, not this process's JSON encoder.
    bodies = [json.dumps(body_of(b)).encode() for b in batches]
    errors: list[str] = []

    def sender(k: int) -> None:
        url = cluster.peers[k % len(cluster.peers)].rest_url
        with httpx.Client(base_url=url, timeout=120) as http:
            for body in bodies[k::clients]:
                response = http.put(
                    "/collections/bench/points?wait=true", content=body,
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
    return sum(len(b.ids) for b in batches) / elapsed


def query_latency(url: str, dim: int, queries: int, exact: bool) -> tuple[float, float]:
    rng = np.random.default_rng(7)
    times = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(queries):
            body = {"query": rng.normal(size=dim).tolist(), "limit": 10,
                    "params": {"exact": exact}}  # fmt: skip
            started = time.perf_counter()
            response = http.post("/collections/bench/points/query", json=body)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    return float(np.percentile(times, 50)) * 1000, float(np.percentile(times, 99)) * 1000


def run_cluster(args: argparse.Namespace, batches: list[UpsertPoints], root: Path) -> None:
    with LocalCluster(root, peers=args.peers, tick_period_ms=100) as cluster:
        cluster.start_first()
        for i in range(1, args.peers):
            cluster.start_joiner(i)
        cluster.wait_for_voters(args.peers, timeout_s=120)
        body = {
            "vectors": {"size": args.dim, "distance": "Cosine"},
            "shard_number": args.shards,
            "optimizers_config": {"indexing_threshold": args.indexing_threshold},
        }
        response = httpx.put(f"{cluster.peers[0].rest_url}/collections/bench", json=body,
                             timeout=60)  # fmt: skip
        assert response.status_code == 200, response.text
        pids = [p.process.pid for p in cluster.peers if p.process is not None]
        cpu_before = [process_cpu_s(pid) for pid in pids]
        rate = rest_ingest(cluster, batches, args.clients)
        cpu_ms = [
            (process_cpu_s(pid) - c) * 1000 / len(batches)
            for pid, c in zip(pids, cpu_before, strict=True)
        ]
        print(f"REST ingest ({args.peers} peers, {args.clients} clients): {rate:,.0f} points/s")
        print(f"REST CPU per batch: {sum(cpu_ms):.1f} ms over the peers "
              f"({', '.join(f'{c:.1f}' for c in cpu_ms)}), wall {BATCH / rate * 1000:.1f} ms")  # fmt: skip
        count = httpx.post(f"{cluster.peers[1].rest_url}/collections/bench/points/count",
                           json={}, timeout=60).json()["result"]["count"]  # fmt: skip
        assert count == args.points, count
        for exact in (False, True):
            p50, p99 = query_latency(cluster.peers[0].rest_url, args.dim, args.queries, exact)
            print(f"query top-10 through REST (exact={exact}): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        args.rest_rate = rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 000 points, 50 queries")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--peers", type=int, default=3)
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--indexing-threshold", type=int, default=10_000, help="kB per shard")
    args = parser.parse_args()
    if args.quick:
        args.points, args.queries = 10_000, 50
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    batches = make_batches(args.points, args.dim, seed=1)
    config = CollectionConfig(
        VectorParams(args.dim, Distance.Cosine), shard_number=args.shards,
        indexing_threshold_kb=args.indexing_threshold,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        local = in_process(batches, config, Path(tmp) / "local", args.queries)
        print(f"in-process build ({args.points} x {args.dim}, {args.shards} shards): "
              f"{local:,.0f} points/s")  # fmt: skip
        run_cluster(args, batches, Path(tmp) / "cluster")
    print(f"REST / in-process ratio: {args.rest_rate / local:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
