"""Which shard calls run niced: graph work only (issue 6)."""

import os
import threading

import numpy as np
import pytest

from refimpl.peer import shards
from refimpl.points import UpsertPoints
from refimpl.storage import ShardConfig, ShardStore

DIM = 4


def _store(points: int, threshold_kb: int) -> ShardStore:
    store = ShardStore.in_memory(ShardConfig(DIM, indexing_threshold_kb=threshold_kb))
    if points:
        vectors = np.random.default_rng(1).normal(size=(points, DIM)).astype(np.float32)
        store.apply(UpsertPoints(tuple(range(points)), vectors, (None,) * points))
    return store


def test_a_storage_only_shard_is_not_graph_work() -> None:
    # 10 000 kB at 4 dims: 640 000 points before a graph
    assert not shards.works_a_graph(_store(100, 10_000))


def test_a_shard_with_a_graph_is_graph_work() -> None:
    store = _store(100, 1)  # 1 kB at 4 dims: a graph past 64 points
    assert store.indexed_vectors_count == 100
    assert shards.works_a_graph(store)


def test_a_shard_about_to_build_its_graph_is_graph_work() -> None:
    threshold = 40  # kB: 2 560 points at 4 dims
    store = _store(600, threshold)
    assert store.indexed_vectors_count == 0
    assert store.config.indexing_threshold_points - len(store) < shards.GRAPH_MARGIN_POINTS
    assert shards.works_a_graph(store)
    assert not shards.works_a_graph(_store(600, 10 * threshold))


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="per-thread nice values are Linux's")
@pytest.mark.parametrize("niced", [False, True])
def test_only_graph_work_lowers_the_thread_priority(niced: bool) -> None:
    store = _store(10, 10_000)
    seen: list[tuple[int, int]] = []

    def worker() -> None:  # a thread of its own: the nice value stays with it
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        shards._in_worker(len, store, niced)
        seen.append((before, os.getpriority(os.PRIO_PROCESS, tid)))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)
    [(before, after)] = seen
    assert after == (min(before + shards.WORKER_NICE, 19) if niced else before)
