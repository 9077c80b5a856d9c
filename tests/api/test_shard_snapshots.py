"""Shard snapshots over REST, and snapshot uploads, on a simulated 3-peer cluster (facts §7.7).

In-process peers with shard files on disk, in virtual time; requests go through the real
Starlette app. Routes: ``POST|GET …/shards/{shard_id}/snapshots``, ``GET|DELETE
…/shards/{shard_id}/snapshots/{snapshot_name}``, ``PUT …/snapshots/recover``, ``POST
…/snapshots/upload`` (and ``POST /collections/{name}/snapshots/upload``).
"""

import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from refimpl.api.app import ApiContext, ApiError, create_app
from refimpl.api.snapshots import check_recoverable
from refimpl.consensus import ShardTransfer
from refimpl.ids import PeerId, ShardId
from refimpl.peer.harness import SimPeer
from refimpl.replication import ReplicaState
from refimpl.storage import parse_snapshot
from tests.peer import _sim
from tests.peer._sim import DIM, peer_by_id, points_body, seeds, shard_store, three_peers

disk_shards = _sim.disk_shards  # the fixture; pytest finds it under this name

NAME = "c"


@pytest.fixture(params=seeds([11]))
async def peers(request: pytest.FixtureRequest, disk_shards: None) -> AsyncIterator[list[SimPeer]]:
    """Three peers; collection ``c``: 2 shards, replication factor 2, points 0..99 (seed 11,
    or each soak seed)."""
    async with trio.open_nursery() as nursery:
        sim, first = await three_peers(nursery, seed=request.param)
        body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 2,
                "replication_factor": 2}  # fmt: skip
        assert await call(first, "PUT", f"/collections/{NAME}", body) is True
        await sim.wait_until(lambda: all(_all_active(p) for p in sim.peers))
        await call(first, "PUT", f"/collections/{NAME}/points?wait=true", points_body(range(100)))
        yield sim.peers
        nursery.cancel_scope.cancel()


def _all_active(p: SimPeer) -> bool:
    assert p.plane is not None
    coll = p.plane.collections.view.cluster.collections.get(NAME)
    if coll is None or coll.transfers:
        return False
    states = [s for shard in coll.replicas.values() for s in shard.values()]
    return len(states) == 4 and set(states) == {ReplicaState.Active}


async def request(p: SimPeer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    assert p.peer is not None
    app = create_app(ApiContext(p.peer, True, p.plane))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://peer") as client:
        return await client.request(method, path, **kwargs)


async def call(p: SimPeer, method: str, path: str, body: Any = None) -> Any:
    response = await request(p, method, path, json=body)
    assert response.status_code == 200, response.text
    return response.json()["result"]


async def refused(p: SimPeer, method: str, path: str, status: int, **kwargs: Any) -> str:
    response = await request(p, method, path, **kwargs)
    assert response.status_code == status, response.text
    message: str = response.json()["status"]["error"]
    assert "result" not in response.json()
    return message


def _holders(p: SimPeer, shard_id: int) -> list[PeerId]:
    assert p.plane is not None
    return sorted(p.plane.collections.view.cluster.collections[NAME].replicas[ShardId(shard_id)])


def _local_ids(p: SimPeer, shard_id: int) -> list[int]:
    return sorted(int(i) for i in shard_store(p, NAME, ShardId(shard_id)).matching_ids(None))


async def test_create_list_download_delete_in_qdrants_shapes(
    peers: list[SimPeer], autojump_clock: trio.testing.MockClock
) -> None:
    """A shard snapshot is made where the shard has a replica: its name says collection,
    shard and peer; the download is the archive with the listed size and SHA-256; delete
    removes it; the collection's own snapshot list does not show it. ``GET …/snapshot``
    streams a fresh archive of the shard without keeping it."""
    holder = peer_by_id(peers, _holders(peers[0], 1)[0])
    base = f"/collections/{NAME}/shards/1/snapshots"
    made = await call(holder, "POST", base)
    assert set(made) == {"name", "creation_time", "size", "checksum"}
    assert made["name"].startswith(f"{NAME}-shard-1-{holder.peer_id}-")
    assert made["name"].endswith(".snapshot")
    assert await call(holder, "GET", base) == [made]
    assert await call(holder, "GET", f"/collections/{NAME}/snapshots") == []
    download = await request(holder, "GET", f"{base}/{made['name']}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/octet-stream"
    assert len(download.content) == made["size"]
    assert hashlib.sha256(download.content).hexdigest() == made["checksum"]
    assert await call(holder, "DELETE", f"{base}/{made['name']}") is True
    assert await call(holder, "GET", base) == []
    streamed = await request(holder, "GET", f"/collections/{NAME}/shards/1/snapshot")
    assert streamed.status_code == 200, streamed.text
    assert f"{NAME}-shard-1-{holder.peer_id}-" in streamed.headers["content-disposition"]
    fresh = parse_snapshot(streamed.content)
    assert sorted(fresh.shards) == [ShardId(1)]
    assert fresh.manifest["shards"][0]["points"] == len(_local_ids(holder, 1))
    assert await call(holder, "GET", base) == [], "a streamed snapshot is not kept"
    await refused(holder, "GET", f"{base}/{made['name']}", 404)
    await refused(holder, "DELETE", f"{base}/{made['name']}", 404)


async def test_recover_from_a_file_and_from_an_upload(
    peers: list[SimPeer], autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """Shard 0's snapshot taken on one holder, points deleted afterwards, recovered on the
    other holder from a file:// location (priority ``no_sync``: only that replica changes),
    then uploaded there with priority ``snapshot`` (both replicas end as the snapshot)."""
    first, second = (peer_by_id(peers, p) for p in _holders(peers[0], 0))
    base = f"/collections/{NAME}/shards/0/snapshots"
    made = await call(first, "POST", base)
    archive = (await request(first, "GET", f"{base}/{made['name']}")).content
    at_t = _local_ids(first, 0)
    assert len(at_t) > 10
    gone = at_t[:10]
    await call(first, "POST", f"/collections/{NAME}/points/delete?wait=true", {"points": gone})
    assert _local_ids(second, 0) == at_t[10:]
    saved = tmp_path / "shard0.snapshot"
    saved.write_bytes(archive)
    body = {"location": saved.as_uri(), "priority": "no_sync", "checksum": made["checksum"]}
    assert await call(second, "PUT", f"{base}/recover", body) is True
    assert _local_ids(second, 0) == at_t
    assert _local_ids(first, 0) == at_t[10:]

    files = {"snapshot": ("shard0.snapshot", archive, "application/octet-stream")}
    query = f"?priority=snapshot&checksum={made['checksum']}"
    answer = await request(second, "POST", f"{base}/upload{query}", files=files)
    assert answer.status_code == 200 and answer.json()["result"] is True, answer.text
    assert _local_ids(second, 0) == at_t
    with trio.fail_after(60):
        while not (_local_ids(first, 0) == at_t and all(_all_active(p) for p in peers)):
            await trio.sleep(0.1)
    count = await call(peers[2], "POST", f"/collections/{NAME}/points/count", {"exact": True})
    assert count["count"] == 100


async def test_collection_snapshot_upload(
    peers: list[SimPeer], autojump_clock: trio.testing.MockClock
) -> None:
    """``POST /collections/{name}/snapshots/upload``: the peer's replicas get the archive
    (a collection snapshot holds the shards local to the peer that made it)."""
    p = peers[0]
    assert p.plane is not None
    local = [s.shard_id for s in p.plane.shards.of_collection(NAME)]
    ids = sorted(i for s in local for i in _local_ids(p, s))[:3]
    made = await call(p, "POST", f"/collections/{NAME}/snapshots")
    archive = (await request(p, "GET", f"/collections/{NAME}/snapshots/{made['name']}")).content
    await call(p, "POST", f"/collections/{NAME}/points/delete?wait=true", {"points": ids})
    assert await call(p, "POST", f"/collections/{NAME}/points", {"ids": ids}) == []
    files = {"snapshot": ("c.snapshot", archive, "application/octet-stream")}
    answer = await request(p, "POST", f"/collections/{NAME}/snapshots/upload", files=files)
    assert answer.status_code == 200 and answer.json()["result"] is True, answer.text
    with trio.fail_after(60):
        while not all(_all_active(x) for x in peers):
            await trio.sleep(0.1)
    found = await call(p, "POST", f"/collections/{NAME}/points", {"ids": ids})
    assert sorted(r["id"] for r in found) == ids


async def test_bad_requests_are_clear_4xx_and_change_nothing(
    peers: list[SimPeer], autojump_clock: trio.testing.MockClock
) -> None:
    """Unknown collection, shard id out of range or not a number, a shard not held here, an
    archive of another shard, a corrupt archive, a wrong checksum, a bad priority, an upload
    without the ``snapshot`` field: 4xx naming the problem; the replica keeps its points."""
    first, second = (peer_by_id(peers, p) for p in _holders(peers[0], 0))
    outsider = next(p for p in peers if p.peer_id not in _holders(peers[0], 0))
    base = f"/collections/{NAME}/shards/0/snapshots"
    made = await call(first, "POST", base)
    archive = (await request(first, "GET", f"{base}/{made['name']}")).content
    other = await call(first, "POST", f"/collections/{NAME}/shards/1/snapshots")
    before = _local_ids(second, 0)
    up = "/upload?priority=snapshot"

    def files(data: bytes) -> dict[str, Any]:
        return {"snapshot": ("x.snapshot", data, "application/octet-stream")}

    assert "doesn't exist" in await refused(
        first, "POST", "/collections/nope/shards/0/snapshots", 404
    )
    assert "has no shard 7" in await refused(
        first, "POST", f"/collections/{NAME}/shards/7/snapshots", 404
    )
    assert "must be an integer" in await refused(
        first, "GET", f"/collections/{NAME}/shards/x/snapshots", 400
    )
    assert "no replica on peer" in await refused(outsider, "POST", base, 400)
    corrupt = bytearray(archive)
    corrupt[len(corrupt) // 2] ^= 0xFF
    assert "nothing changed" in await refused(
        second, "POST", base + up, 400, files=files(bytes(corrupt))
    )
    assert "checksum" in await refused(
        second, "POST", base + up + "&checksum=" + "0" * 64, 400, files=files(archive)
    )
    assert "priority" in await refused(
        second, "POST", base + "/upload?priority=truth", 400, files=files(archive)
    )
    assert "`snapshot`" in await refused(
        second, "POST", base + up, 400, files={"other": ("x", b"1")}
    )
    assert "`snapshot`" in await refused(second, "POST", base + up, 400, json={"a": 1})
    for where in ("file:///nonexistent/x.snapshot", "file:///dev/zero", "file:///"):
        bad = {"location": where}
        assert "cannot read" in await refused(second, "PUT", base + "/recover", 400, json=bad)
    assert "location" in await refused(
        second, "PUT", base + "/recover", 400, json={"priority": "snapshot"}
    )
    wrong = await request(first, "GET", f"/collections/{NAME}/shards/1/snapshots/{other['name']}")
    assert "not shard 0" in await refused(
        second, "POST", base + up, 400, files=files(wrong.content)
    )
    assert "not a snapshot name" in await refused(first, "GET", base + "/x.tar", 400)
    assert _local_ids(second, 0) == before
    assert all(_all_active(p) for p in peers)


async def test_a_replica_being_created_or_in_a_transfer_is_refused_before_any_change(
    peers: list[SimPeer], autojump_clock: trio.testing.MockClock
) -> None:
    """Only Active, Dead and Recovery replicas (Recovery: a recovery to repeat) with no
    transfer are recovered; anything else is refused with the state named."""
    first, second = _holders(peers[0], 0)
    assert peers[0].plane is not None
    coll = peers[0].plane.collections.view.cluster.collections[NAME]
    s0 = ShardId(0)
    check_recoverable(coll, [s0], first)
    for state in (ReplicaState.Dead, ReplicaState.Recovery):
        replicas = {**coll.replicas, s0: {**coll.replicas[s0], first: state}}
        check_recoverable(replace(coll, replicas=replicas), [s0], first)
    for state in (ReplicaState.Partial, ReplicaState.Initializing):
        replicas = {**coll.replicas, s0: {**coll.replicas[s0], first: state}}
        with pytest.raises(ApiError, match=f"is {state.value}; recover it once"):
            check_recoverable(replace(coll, replicas=replicas), [s0], first)
    moving = replace(coll, transfers=(ShardTransfer(s0, first, PeerId(999), sync=True),))
    with pytest.raises(ApiError, match="is Active and in a transfer"):
        check_recoverable(moving, [s0], first)
    check_recoverable(moving, [s0], second)  # not involved
    check_recoverable(moving, [ShardId(1)], first)  # another shard
