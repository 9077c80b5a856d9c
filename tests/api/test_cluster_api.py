"""REST: Qdrant's envelopes and cluster endpoints, served in-process over a simulated cluster."""

from collections.abc import AsyncIterator

import httpx
import pydantic
import pytest
import trio
import trio.testing
from qdrant_client.http import models
from starlette.routing import Route

from refimpl.api.app import QDRANT_VERSION, ApiContext, create_app
from refimpl.api.openapi import DOCUMENTED_PATHS
from refimpl.consensus import (
    CollectionConfig,
    CreateCollection,
    Distance,
    VectorParams,
    encode_operation,
)
from refimpl.peer.harness import SimCluster
from refimpl.peer.node import Peer
from refimpl.raft import Role
from tests.peer._sim import three_voters


@pytest.fixture
async def sim() -> AsyncIterator[SimCluster]:
    async with trio.open_nursery() as nursery:
        yield SimCluster(nursery, seed=11)
        nursery.cancel_scope.cancel()


async def three(sim: SimCluster) -> list[Peer]:
    """Three running peers, once each counts three voters (tests.peer._sim.three_voters)."""
    await three_voters(sim)
    return sim.running()


def client(peer: Peer, enabled: bool = True) -> httpx.AsyncClient:
    app = create_app(ApiContext(peer, enabled))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://peer")


async def test_root_reports_title_and_a_1_19_version(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The official client reads ``version`` at the top level of GET / and wants 1.19-1.21."""
    peer = (await sim.start_first()).peer
    assert peer is not None
    async with client(peer) as http:
        body = (await http.get("/")).json()
    assert body["title"] == "qdrant - vector search engine (refimpl)"
    assert body["version"] == QDRANT_VERSION and QDRANT_VERSION.startswith("1.19.")
    assert models.VersionInfo.model_validate(body).version == QDRANT_VERSION


async def test_get_cluster_fits_the_official_client_model(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """GET /cluster: spec "Distributed deployment" shape, parsed by qdrant-client's own model."""
    peers = await three(sim)
    async with client(peers[1]) as http:
        response = await http.get("/cluster")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok"
    assert isinstance(body["time"], float)
    result = body["result"]
    parsed = pydantic.TypeAdapter(models.ClusterStatus).validate_python(result)
    assert isinstance(parsed, models.ClusterStatusOneOf1)
    assert parsed.peer_id == peers[1].id
    assert set(result["peers"]) == {str(p.id) for p in peers}
    assert parsed.raft_info.is_voter is True and parsed.raft_info.pending_operations == 0
    assert parsed.raft_info.leader == sim.leader().id  # type: ignore[union-attr]
    assert result["consensus_thread_status"]["consensus_thread_status"] == "working"
    assert result["message_send_failures"] == {}


async def test_metadata_goes_through_consensus(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """PUT /cluster/metadata/keys/{key} on a follower is applied on every peer."""
    peers = await three(sim)
    follower = next(p for p in peers if p.node.role == Role.FOLLOWER)
    async with client(follower) as http:
        put = await http.put("/cluster/metadata/keys/owner", json={"team": "search"})
        assert put.status_code == 200 and put.json()["result"] is True
        got = await http.get("/cluster/metadata/keys/owner")
        assert got.json()["result"] == {"team": "search"}
        assert (await http.get("/cluster/metadata/keys")).json()["result"] == ["owner"]
    await sim.wait_until(lambda: all("owner" in p.state.metadata() for p in sim.running()))


@pytest.mark.parametrize(
    "case",
    [
        ("GET", "/no/such/route", None, 404, "Not found: "),
        ("POST", "/cluster", None, 405, "Bad request: "),
        (
            "PUT",
            "/cluster/metadata/keys/k",
            b"{not json",
            400,
            "Bad request: body is not valid JSON",
        ),
        ("DELETE", "/cluster/peer/abc", None, 400, "Bad request: peer id must be an integer"),
        ("DELETE", "/cluster/peer/12345", None, 404, "Not found: peer 12345"),
        (
            "DELETE",
            "/cluster/peer/12345?force=maybe",
            None,
            400,
            "Bad request: query parameter force",
        ),
    ],
)
async def test_bad_requests_get_4xx_envelopes(
    sim: SimCluster,
    autojump_clock: trio.testing.MockClock,
    case: tuple[str, str, bytes | None, int, str],
) -> None:
    """Errors use Qdrant's ``{"status": {"error": …}, "time": …}`` envelope, never a 500."""
    method, path, content, status, prefix = case
    first = await sim.start_first()
    await sim.wait_until(lambda: sim.leader() is not None)
    assert first.peer is not None
    async with client(first.peer) as http:
        response = await http.request(method, path, content=content)
    body = response.json()
    assert response.status_code == status
    assert "result" not in body and body["status"]["error"].startswith(prefix)
    assert isinstance(body["time"], float)


async def test_no_leader_means_503_with_retry_after(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Spec "Raft": while electing a leader, updates are denied (503 + Retry-After, retryable)."""
    peers = await three(sim)
    lone = next(s for s in sim.peers if s.peer is not None and s.peer.node.role == Role.FOLLOWER)
    sim.network.partition([lone.address], [s.address for s in sim.peers if s is not lone])
    assert lone.peer is not None
    lone_peer = lone.peer
    await sim.wait_until(lambda: lone_peer.node.leader_id is None)
    async with client(lone_peer) as http:
        response = await http.put("/cluster/metadata/keys/k", json=1)
        readyz = await http.get("/readyz")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "no leader" in response.json()["status"]["error"]
    assert readyz.status_code == 503
    assert len(peers) == 3


async def test_remove_peer_through_the_api(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """DELETE /cluster/peer/{id} removes an empty peer through consensus (spec: remove peer API)."""
    peers = await three(sim)
    leader = sim.leader()
    assert leader is not None
    victim = next(p for p in peers if p is not leader)
    async with client(leader) as http:
        response = await http.delete(f"/cluster/peer/{victim.id}")
        assert response.status_code == 200 and response.json()["result"] is True
        cluster = (await http.get("/cluster")).json()["result"]
    assert str(victim.id) not in cluster["peers"] and len(cluster["peers"]) == 2
    await sim.wait_until(lambda: victim.stopped)


async def test_standalone_mode(sim: SimCluster, autojump_clock: trio.testing.MockClock) -> None:
    """cluster.enabled=false: GET /cluster says disabled; peer removal is 405 (as Qdrant)."""
    first = await sim.start_first()
    assert first.peer is not None
    async with client(first.peer, enabled=False) as http:
        assert (await http.get("/cluster")).json()["result"] == {"status": "disabled"}
        response = await http.delete("/cluster/peer/1")
        assert (await http.get("/healthz")).text == "healthz check passed"
    assert response.status_code == 405
    assert response.json()["status"]["error"] == "Qdrant is running in standalone mode"


async def test_openapi_documents_every_route(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """/openapi.json describes exactly the endpoints the app serves."""
    first = await sim.start_first()
    assert first.peer is not None
    app = create_app(ApiContext(first.peer, True))
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }
    documented = {(path, m) for path, ops in DOCUMENTED_PATHS.items() for m in ops}
    assert served == documented
    async with client(first.peer) as http:
        doc = (await http.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.") and set(doc["paths"]) == set(DOCUMENTED_PATHS)


async def test_removal_is_refused_while_the_peer_holds_replicas_unless_forced(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Qdrant: "Cannot remove peer … as there are shards on it" (400) unless ?force=true."""
    peers = await three(sim)
    leader = sim.leader()
    assert leader is not None
    holder = next(p for p in peers if p is not leader)
    config = CollectionConfig(vectors=VectorParams(4, Distance.Cosine))
    assert await leader.propose(encode_operation(CreateCollection("c", config, ((holder.id,),))))
    async with client(leader) as http:
        refused = await http.delete(f"/cluster/peer/{holder.id}")
        assert refused.status_code == 400
        assert refused.json()["status"]["error"] == (
            f"Bad request: Cannot remove peer {holder.id} as there are shards on it"
        )
        forced = await http.delete(f"/cluster/peer/{holder.id}?force=true")
        assert forced.status_code == 200
    assert not leader.state.peer_has_shards(holder.id)
    assert holder.id not in leader.state.peers()
