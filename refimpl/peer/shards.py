"""The shard replicas this peer holds: created, opened and deleted as the cluster state says.

Rules (spec "Sharding": each peer stores the shards placed on it; facts §2, §4):

* The cluster state (applied from the Raft log) is the only source of truth. After every
  applied entry the peer calls :meth:`LocalShards.reconcile` with the new state: every replica
  the state places on this peer gets a :class:`refimpl.storage.ShardStore` (opened from its
  directory if it exists, so a restarted peer recovers its points from the WAL), and every
  store whose replica is gone is closed and its files deleted.
* A collection's files live in ``<root>/collections/<name>/<incarnation>/<shard>/``. The
  incarnation is the number of collections created before this one (the same on every peer,
  since every peer applies the same log), so replaying "create c, delete c, create c" at start
  deletes only the first collection's files, never the second's.
* A new replica starts ``Initializing``; once its store exists, :meth:`LocalShards.run_activator`
  proposes ``SetReplicaState(activated, from_state=Initializing)`` so it becomes ``Active``
  through consensus, as Qdrant does. The compare-and-set guard makes a repeated proposal
  harmless.
* Calls into one store run one at a time (a ``trio.Lock`` per store) in a worker thread, so a
  slow HNSW insert does not stall the Raft ticks of this peer; calls into a store that builds
  or holds an HNSW graph run at a lower OS priority too (:func:`works_a_graph`).

* A replica the state no longer places here is *retired* at once: a call that was already
  waiting for it still reads, but an update is refused (a ``StorageError``), so its
  coordinator, seeing the replica set changed, sends it again to the current replicas instead
  of having it applied to a store about to be deleted (the end of a move).
* The target of a ``snapshot`` transfer replaces its store by the transferred checkpoint
  (:meth:`LocalShard.restore`).

Theory of operation: :meth:`reconcile` is synchronous (it runs inside the consensus loop, where
opening or deleting a few directories is cheap); closing a store that may be in use is handed
to a task that first takes the store's lock.
"""

import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import trio

from refimpl.consensus import ClusterState, CollectionConfig, SetReplicaState, encode_operation
from refimpl.ids import PeerId, ShardId
from refimpl.index import Distance, HnswConfig
from refimpl.peer.node import ProposalError
from refimpl.replication import ReplicaEvent, ReplicaState
from refimpl.storage import MemoryMedium, ShardConfig, ShardStore, StorageError
from refimpl.storage.media import Files

__all__ = ["ClusterView", "LocalShard", "LocalShards", "shard_config", "works_a_graph"]

log = logging.getLogger("refimpl.peer.shards")

T = TypeVar("T")

NEVER_INDEX_KB = 1 << 40
"""``indexing_threshold`` 0 means "never build a graph" (as in Qdrant)."""


def shard_config(config: CollectionConfig) -> ShardConfig:
    """The storage parameters of a shard of a collection with ``config``."""
    hnsw = config.hnsw_config
    threshold_kb = config.indexing_threshold_kb or NEVER_INDEX_KB
    return ShardConfig(
        dim=config.vectors.size,
        # The two enums share Qdrant's spellings as values.
        distance=Distance(config.vectors.distance.value),
        hnsw=HnswConfig(m=hnsw.m, ef_construct=max(4, hnsw.ef_construct)),
        indexing_threshold_kb=threshold_kb,
    )


def _lower_priority() -> None:
    """Run graph work at a lower OS priority than the consensus loop (Linux nice values are
    per thread), so a busy machine still delivers this peer's Raft ticks on time."""
    if getattr(_NICED, "done", False):
        return
    _NICED.done = True
    tid = threading.get_native_id()
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICE)


_NICED = threading.local()
"""Per thread: whether it was niced already (a thread-local, not a set of thread ids: the
kernel reuses the id of a thread that ended, and the thread cache ends idle ones)."""
WORKER_NICE = 5
GRAPH_MARGIN_POINTS = 2_048
"""A shard this close to its indexing threshold counts as building a graph already."""


def works_a_graph(store: ShardStore) -> bool:
    """Whether calls into ``store`` are graph work, long and CPU-bound: it has an HNSW graph,
    or is within :data:`GRAPH_MARGIN_POINTS` of building one. Only those run niced: a
    storage-only call (check, log, fsync) is short, and a niced thread stays niced for the
    next job the thread cache gives it, such as decoding a request body. Niced, the
    storage-only ingest of issue 6 cost the peers about 15 % more CPU per batch."""
    threshold = store.config.indexing_threshold_points
    return store.indexed_vectors_count > 0 or len(store) + GRAPH_MARGIN_POINTS > threshold


def _in_worker(fn: Callable[[ShardStore], T], store: ShardStore, niced: bool) -> T:
    if niced:
        _lower_priority()
    return fn(store)


@dataclass(slots=True)
class LocalShard:
    """One replica held here: its store (opened on first use, in a worker thread, because
    recovering a big WAL takes a while) and the lock that serialises calls into it."""

    collection: str
    shard_id: ShardId
    incarnation: int
    config: ShardConfig
    opener: Callable[[], ShardStore]
    store: ShardStore | None = None
    threaded: bool = True
    """False in the peer simulation: calls run inline, so virtual time stays deterministic."""
    lock: trio.Lock = field(default_factory=trio.Lock)
    retired: bool = False
    """The state no longer places this replica here: calls still waiting for the lock may
    read, but an update is refused (its coordinator sends it again to the current replicas;
    applied here it would be lost with this store)."""

    async def run(self, fn: Callable[[ShardStore], T]) -> T:
        """Run ``fn(store)`` in a worker thread, one call at a time."""
        async with self.lock:
            if self.store is None:
                self.store = await self._call(self.opener)
                log.info("opened shard %s/%d (%d points)", self.collection, self.shard_id,
                         len(self.store))  # fmt: skip
            store = self.store
            niced = works_a_graph(store)
            if self.retired:
                store = cast(ShardStore, _Retired(store))
            return await self._call(lambda: _in_worker(fn, store, niced))

    async def restore(self, files: Files) -> int:
        """Replace this replica's content by a snapshot's checkpoint files (the target of a
        ``snapshot`` transfer, a snapshot recovery), atomically on its medium: a crash leaves
        the old content or the new, never an empty replica. Returns the points."""
        opener = self.opener
        async with self.lock:
            old, self.store = self.store, None  # on failure the next call reopens what is there

            def swap() -> ShardStore:
                return (old if old is not None else opener()).replaced_by(files)

            self.store = await self._call(swap)
            return len(self.store)

    async def _call(self, fn: Callable[[], T]) -> T:
        if self.threaded:
            return await trio.to_thread.run_sync(fn)
        await trio.lowlevel.checkpoint()
        return fn()

    @property
    def key(self) -> tuple[str, ShardId]:
        """``(collection, shard_id)``."""
        return (self.collection, self.shard_id)

    @property
    def points_count(self) -> int:
        """Points stored (0 until the store is opened)."""
        return 0 if self.store is None else len(self.store)

    @property
    def indexed_vectors_count(self) -> int:
        """Points in an HNSW graph (0 until the store is opened)."""
        return 0 if self.store is None else self.store.indexed_vectors_count


class _Retired:
    """A dropped replica's store as late calls see it: reads answer, updates are refused."""

    def __init__(self, store: ShardStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        raise StorageError("this replica was just removed from this peer; send the update again")


Key = tuple[str, ShardId]


class ClusterView(Protocol):
    """The applied cluster state, and each collection's incarnation number."""

    @property
    def cluster(self) -> ClusterState: ...

    def incarnation(self, name: str) -> int: ...


class LocalShards:
    """The stores of the replicas placed on ``peer_id``; on disk under ``root``, or in memory
    when ``root`` is None (the peer simulation)."""

    def __init__(self, peer_id: PeerId, root: Path | None, *, threaded: bool = True) -> None:
        self.peer_id = peer_id
        self.root = root
        self.threaded = threaded
        self._shards: dict[Key, LocalShard] = {}
        self._state = ClusterState()
        self._changed = trio.Event()
        self._closing: list[LocalShard] = []
        self.broken: dict[Key, str] = {}
        """Replicas whose files could not be opened, and why."""

    # ------------------------------------------------------------------ views

    def get(self, collection: str, shard_id: ShardId) -> LocalShard | None:
        """The local replica of ``collection``/``shard_id``, if this peer holds one."""
        return self._shards.get((collection, shard_id))

    def of_collection(self, collection: str) -> list[LocalShard]:
        """Every local replica of ``collection``, by shard id."""
        return [s for (name, _), s in sorted(self._shards.items()) if name == collection]

    def directory(self, collection: str, incarnation: int, shard_id: ShardId) -> Path | None:
        """Where a replica's files live (None in memory)."""
        if self.root is None:
            return None
        return self.root / "collections" / collection / str(incarnation) / str(shard_id)

    # -------------------------------------------------------------- reconcile

    def reconcile(self, view: "ClusterView") -> None:
        """Make the local stores match the applied state (see the module rules)."""
        state = view.cluster
        wanted: dict[Key, int] = {}
        for name, coll in state.collections.items():
            for shard_id, replicas in coll.replicas.items():
                if self.peer_id in replicas:
                    wanted[(name, shard_id)] = view.incarnation(name)
        for key, shard in list(self._shards.items()):
            if wanted.get(key) != shard.incarnation:
                del self._shards[key]
                self._drop(shard)
        for key, incarnation in wanted.items():
            if key not in self._shards:
                self._open(key, incarnation, state)
        self._state = state
        self._changed.set()

    def _open(self, key: Key, incarnation: int, state: ClusterState) -> None:
        name, shard_id = key
        config = shard_config(state.collections[name].config)
        directory = self.directory(name, incarnation, shard_id)

        def opener() -> ShardStore:
            if directory is None:
                return ShardStore.in_memory(config, MemoryMedium())
            return ShardStore.open(directory, config)

        self._shards[key] = LocalShard(
            name, shard_id, incarnation, config, opener, threaded=self.threaded
        )

    def _drop(self, shard: LocalShard) -> None:
        """Forget a replica: its files go once no call is using the store."""
        log.info("peer %d: dropping shard %s/%d", self.peer_id, shard.collection, shard.shard_id)
        shard.retired = True
        if shard.lock.locked():
            self._closing.append(shard)
            self._changed.set()
            return
        self._destroy(shard)

    def _destroy(self, shard: LocalShard) -> None:
        if shard.store is not None:
            shard.store.destroy()
        directory = self.directory(shard.collection, shard.incarnation, shard.shard_id)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
            for parent in (directory.parent, directory.parent.parent):
                try:
                    parent.rmdir()  # only when empty: other shards may still live there
                except OSError:
                    break

    def close(self) -> None:
        """fsync and release every store (the peer is shutting down)."""
        for shard in self._shards.values():
            if shard.store is not None:
                shard.store.close()

    # -------------------------------------------------------------- activation

    async def _open_or_report(self, shard: LocalShard) -> None:
        """Open a store; a store that cannot be opened (damaged files) is reported and left
        closed, so its replica stays Initializing instead of serving wrong data."""
        try:
            await shard.run(lambda store: None)
        except (StorageError, OSError) as exc:
            self.broken[shard.key] = str(exc)
            log.error("peer %d: cannot open shard %s/%d: %s", self.peer_id, shard.collection,
                      shard.shard_id, exc)  # fmt: skip

    def pending_activations(self) -> list[SetReplicaState]:
        """Operations that would turn this peer's Initializing replicas Active."""
        ops = []
        for name, coll in sorted(self._state.collections.items()):
            for shard_id, replicas in sorted(coll.replicas.items()):
                shard = self._shards.get((name, shard_id))
                mine = replicas.get(self.peer_id)
                if (
                    mine is ReplicaState.Initializing
                    and shard is not None
                    and shard.store is not None
                ):
                    ops.append(
                        SetReplicaState(
                            name,
                            shard_id,
                            self.peer_id,
                            ReplicaEvent.ACTIVATED,
                            from_state=ReplicaState.Initializing,
                        )
                    )
        return ops

    async def run_activator(
        self, propose: Callable[[bytes], Awaitable[Any]], retry_s: float = 0.2
    ) -> None:
        """Forever: when the state changes, propose activations and finish pending drops.

        ``propose`` is an async callable (``Peer.propose``); failures (no leader yet) are
        retried after ``retry_s``."""
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            for shard in self._closing[:]:
                async with shard.lock:
                    self._destroy(shard)
                self._closing.remove(shard)
            for shard in list(self._shards.values()):
                if shard.store is None and shard.key not in self.broken:
                    await self._open_or_report(shard)
            for op in self.pending_activations():
                try:
                    await propose(encode_operation(op))
                except ProposalError as exc:
                    log.info("peer %d: activation of %s/%d: %s; retrying", self.peer_id,
                             op.collection, op.shard_id, exc)  # fmt: skip
                    await trio.sleep(retry_s)
                    self._changed.set()
                    break
