"""The shard store behaves as a plain dictionary of points, through random updates,
checkpoints and crashes (ARCHITECTURE principle 8: every clever component has a dumb twin;
issue 6: a restarted shard recovers every acknowledged point)."""

import random

import numpy as np
import pytest

from refimpl.ids import PointId
from refimpl.index import Distance
from refimpl.points import DeleteByFilter, DeletePoints, UpsertPoints, parse_filter
from refimpl.points.requests import ScrollRequest
from refimpl.storage import MemoryMedium, ShardConfig, ShardStore

Model = dict[PointId, tuple[tuple[float, ...], int | None]]
CONFIG = ShardConfig(3, Distance.DOT, checkpoint_wal_bytes=3_000, wal_retain_ops=4)


def _contents(store: ShardStore) -> Model:
    """Everything the store holds, read through its public API."""
    page = store.scroll(ScrollRequest(limit=10_000, with_vector=True))
    return {r.id: (r.vector or (), (r.payload or {}).get("v")) for r in page.points}


def _step(rng: random.Random, store: ShardStore, model: Model) -> None:
    """One random update, applied to the store and to the model."""
    kind = rng.random()
    if kind < 0.6:
        ids = [rng.randrange(40) for _ in range(rng.randrange(1, 5))]
        vectors = np.array([[rng.randrange(-5, 5) for _ in range(3)] for _ in ids], np.float32)
        values = [rng.randrange(4) for _ in ids]
        store.apply(UpsertPoints(tuple(ids), vectors, tuple({"v": v} for v in values)),
                    wait=rng.random() < 0.5)  # fmt: skip
        for point_id, vector, value in zip(ids, vectors.tolist(), values, strict=True):
            model[point_id] = (tuple(vector), value)
    elif kind < 0.8:
        ids = [rng.randrange(40) for _ in range(3)]
        store.apply(DeletePoints(tuple(ids)), wait=rng.random() < 0.5)
        for point_id in ids:
            model.pop(point_id, None)
    else:
        value = rng.randrange(4)
        store.apply(DeleteByFilter(parse_filter({"must": [{"key": "v", "match": {"value": value}}]})),
                    wait=rng.random() < 0.5)  # fmt: skip
        for gone in [p for p, (_, v) in model.items() if v == value]:
            del model[gone]


@pytest.mark.parametrize("seed", range(12))
def test_store_equals_the_dictionary_model_through_crashes(seed: int) -> None:
    """After any crash the store holds exactly the model's state at some operation at or
    after the last acknowledged (fsynced) one: nothing acknowledged is lost, nothing invented."""
    rng = random.Random(seed)
    medium = MemoryMedium()
    store = ShardStore.in_memory(CONFIG, medium)
    model: Model = {}
    history: dict[int, Model] = {0: {}}
    lost = 0
    for _ in range(120):
        roll = rng.random()
        if roll < 0.05:
            store.checkpoint()
        elif roll < 0.12:
            durable = store.last_op_num if not store.wal.unsynced else _last_synced(store)
            before = store.last_op_num
            medium.crash(rng if rng.random() < 0.5 else None)
            store = ShardStore.in_memory(CONFIG, medium)
            assert durable <= store.last_op_num <= before
            lost += before - store.last_op_num
            model = dict(history[store.last_op_num])
        else:
            _step(rng, store, model)
            history[store.last_op_num] = dict(model)
        assert _contents(store) == model
    assert lost > 0 or seed not in (0, 1, 2)  # the crashes really do lose unsynced updates


def _last_synced(store: ShardStore) -> int:
    """The newest operation whose WAL record is durable: everything up to the last sync."""
    durable_bytes = len(store.medium.log.durable)  # type: ignore[attr-defined]
    total, last = 0, store.checkpoint_op_num
    for record, size in zip(store.wal.records, store.wal.sizes, strict=True):
        total += size
        if total <= durable_bytes:
            last = max(last, record.op_num)
    return last
