"""Benchmark of the shard store: WAL fsync rate, ingest rate, checkpoint and recovery times.

Run ``python bench/bench_storage.py`` (about a minute) or ``--quick`` (seconds). Figures, all
on the same machine in one run, in a temporary directory on the working disk:

* WAL append + fsync rate: one-point upserts with ``wait=true`` (one fsync each), and the same
  with ``wait=false`` plus one :meth:`ShardStore.sync` at the end (group commit);
* ingest: batches of 256 points x 128 dims with ``wait=true`` (exact index, below the HNSW
  threshold), in points/s;
* recovery of a shard of N points: by replaying the whole WAL, and from a checkpoint;
* checkpoint time, and the same with an HNSW graph (``--hnsw``: a lower indexing threshold so
  the shard builds HNSW; recovery then loads the graph instead of rebuilding it).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from refimpl.index import Distance
from refimpl.points import UpsertPoints
from refimpl.storage import ShardConfig, ShardStore


def _batch(start: int, count: int, dim: int, rng: np.random.Generator) -> UpsertPoints:
    vectors = rng.normal(size=(count, dim)).astype(np.float32)
    payloads = tuple({"n": i, "tag": f"t{i % 10}"} for i in range(start, start + count))
    return UpsertPoints(tuple(range(start, start + count)), vectors, payloads)


def wal_rates(root: Path, ops: int) -> None:
    """One-point upserts: fsync per op vs group commit."""
    rng = np.random.default_rng(0)
    config = ShardConfig(16, Distance.COSINE)
    for wait in (True, False):
        store = ShardStore.open(root / f"wal-{wait}", config)
        ops_list = [_batch(i, 1, 16, rng) for i in range(ops)]
        started = time.perf_counter()
        for op in ops_list:
            store.apply(op, wait=wait)
        store.sync()
        seconds = time.perf_counter() - started
        label = "wait=true (fsync each)" if wait else "wait=false + one sync"
        print(f"WAL one-point upserts, {label}: {ops / seconds:,.0f} ops/s")
        store.close()


def ingest_and_recover(root: Path, points: int, dim: int, threshold_kb: int) -> None:
    """Batched ingest, then recovery from the WAL alone and from a checkpoint."""
    rng = np.random.default_rng(1)
    config = ShardConfig(dim, Distance.COSINE, indexing_threshold_kb=threshold_kb,
                         checkpoint_wal_bytes=1 << 40)  # fmt: skip
    kind = "HNSW" if points > config.indexing_threshold_points else "exact"
    store = ShardStore.open(root / f"shard-{kind}", config)
    batches = [_batch(s, min(256, points - s), dim, rng) for s in range(0, points, 256)]
    started = time.perf_counter()
    for op in batches:
        store.apply(op, wait=True)
    seconds = time.perf_counter() - started
    print(f"ingest {points} x {dim} ({kind} index), batches of 256, wait=true: "
          f"{points / seconds:,.0f} points/s")  # fmt: skip
    started = time.perf_counter()
    again = ShardStore.open(root / f"shard-{kind}", config)
    print(f"recovery of {len(again)} points by replaying the WAL: "
          f"{time.perf_counter() - started:.2f} s")  # fmt: skip
    again.close()
    started = time.perf_counter()
    store.checkpoint()
    print(f"checkpoint of {len(store)} points: {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    again = ShardStore.open(root / f"shard-{kind}", config)
    print(f"recovery of {len(again)} points from the checkpoint: "
          f"{time.perf_counter() - started:.2f} s")  # fmt: skip
    again.close()
    store.close()


def main() -> None:
    """Parse arguments and run every figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--hnsw", action="store_true", help="also measure with an HNSW graph")
    args = parser.parse_args()
    ops, points = (200, 2_000) if args.quick else (2_000, 10_000)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        root = Path(tmp)
        wal_rates(root, ops)
        ingest_and_recover(root, points, 128, threshold_kb=10_000)
        if args.hnsw:
            ingest_and_recover(root, points, 128, threshold_kb=64)


if __name__ == "__main__":
    main()
