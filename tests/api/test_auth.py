"""REST authentication: Qdrant's ``service.api_key`` and ``service.read_only_api_key``.

Issue 10 "Authentication", served in-process over a simulated one-peer cluster.
"""

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from refimpl.api.app import ApiContext, create_app
from refimpl.api.auth import ApiKeys, is_read_only, presented_key, with_api_keys
from refimpl.config import ConfigError, ServiceConfig, load_settings
from refimpl.peer.harness import SimCluster, SimPeer

RW_KEY = "rw-7f3a9c1e"
RO_KEY = "ro-2b8d4e6f"
WRONG_KEY = "rw-7f3a9c1f"
KEYS = ServiceConfig.model_validate({"api_key": RW_KEY, "read_only_api_key": RO_KEY})
DIM = 4
MISSING = "Unauthorized: Must provide an API key or an Authorization bearer token"


@pytest.fixture
async def peer() -> AsyncIterator[SimPeer]:
    async with trio.open_nursery() as nursery:
        sim = SimCluster(nursery, seed=3, with_data=True)
        first = await sim.start_first()
        await sim.wait_until(lambda: sim.leader() is not None)
        yield first
        nursery.cancel_scope.cancel()


def http(peer: SimPeer, service: ServiceConfig, key: str | None = None) -> httpx.AsyncClient:
    assert peer.peer is not None
    app = with_api_keys(create_app(ApiContext(peer.peer, True, peer.plane)), service)
    headers = {"api-key": key} if key is not None else None
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://peer", headers=headers)


async def request(
    peer: SimPeer, method: str, path: str, key: str | None, body: Any = None
) -> httpx.Response:
    async with http(peer, KEYS, key) as client:
        return await client.request(method, path, json=body)


async def test_without_keys_the_api_is_open(
    peer: SimPeer, autojump_clock: trio.testing.MockClock
) -> None:
    """No api_key configured (or an empty one, as Qdrant): every call works without a key."""
    empty = ServiceConfig.model_validate({"api_key": "", "read_only_api_key": ""})
    for service in (ServiceConfig(), empty):
        assert ApiKeys.from_config(service) is None
        async with http(peer, service) as client:
            assert (await client.get("/cluster")).status_code == 200
            put = await client.put("/cluster/metadata/keys/k", json=1)
            assert put.status_code == 200, put.text


async def test_missing_or_wrong_key_is_401_with_a_clear_message(
    peer: SimPeer, autojump_clock: trio.testing.MockClock
) -> None:
    """With a key configured, a call without it or with another key is refused with 401."""
    missing = await request(peer, "GET", "/cluster", None)
    assert missing.status_code == 401
    assert missing.json()["status"] == {"error": MISSING}
    wrong = await request(peer, "GET", "/cluster", WRONG_KEY)
    assert wrong.status_code == 401
    assert wrong.json()["status"] == {"error": "Unauthorized: Invalid API key"}
    async with http(peer, KEYS) as client:
        bearer_wrong = await client.get("/cluster", headers={"Authorization": "Bearer nope"})
        not_bearer = await client.get("/cluster", headers={"Authorization": f"Basic {RW_KEY}"})
    assert bearer_wrong.status_code == 401 and not_bearer.status_code == 401
    assert not_bearer.json()["status"] == {"error": MISSING}


async def test_the_read_write_key_works_in_either_header(
    peer: SimPeer, autojump_clock: trio.testing.MockClock
) -> None:
    """The right key in ``api-key`` or in ``Authorization: Bearer`` is let through, reads and writes."""
    ok = await request(peer, "PUT", "/cluster/metadata/keys/k", RW_KEY, 7)
    assert ok.status_code == 200, ok.text
    async with http(peer, KEYS) as client:
        bearer = await client.get(
            "/cluster/metadata/keys/k", headers={"Authorization": f"Bearer {RW_KEY}"}
        )
    assert bearer.status_code == 200 and bearer.json()["result"] == 7


async def test_the_read_only_key_reads_but_cannot_write(
    peer: SimPeer, autojump_clock: trio.testing.MockClock
) -> None:
    """Read-only key: GET and searching POSTs answer; writes and cluster changes are 403."""
    create = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 1}
    assert (await request(peer, "PUT", "/collections/c", RW_KEY, create)).status_code == 200
    points = {"points": [{"id": 1, "vector": [1.0, 0.0, 0.0, 0.0]}]}
    upsert = await request(peer, "PUT", "/collections/c/points?wait=true", RW_KEY, points)
    assert upsert.status_code == 200, upsert.text
    reads: list[tuple[str, str, Any]] = [
        ("GET", "/cluster", None),
        ("GET", "/collections/c", None),
        ("POST", "/collections/c/points", {"ids": [1]}),
        ("POST", "/collections/c/points/count", {}),
        ("POST", "/collections/c/points/scroll", {"limit": 10}),
        ("POST", "/collections/c/points/query", {"query": [1.0, 0, 0, 0], "limit": 1}),
        ("POST", "/collections/c/points/search", {"vector": [1.0, 0, 0, 0], "limit": 1}),
    ]
    for method, path, body in reads:
        answer = await request(peer, method, path, RO_KEY, body)
        assert answer.status_code == 200, (method, path, answer.text)
    writes: list[tuple[str, str, Any]] = [
        ("PUT", "/collections/c/points?wait=true", points),
        ("POST", "/collections/c/points/delete", {"points": [1]}),
        ("DELETE", "/collections/c", None),
        ("PUT", "/collections/d", create),
        ("PUT", "/cluster/metadata/keys/k", 1),
        ("DELETE", "/cluster/peer/1", None),
    ]
    for method, path, body in writes:
        answer = await request(peer, method, path, RO_KEY, body)
        assert answer.status_code == 403, (method, path, answer.text)
        message = answer.json()["status"]["error"]
        assert message.startswith(f"Forbidden: the read-only API key cannot call {method} ")
        assert "read-write api_key" in message
    count = await request(peer, "POST", "/collections/c/points/count", RW_KEY, {})
    assert count.json()["result"]["count"] == 1  # nothing the read-only key sent was applied


async def test_health_and_version_stay_open(
    peer: SimPeer, autojump_clock: trio.testing.MockClock
) -> None:
    """/, /healthz, /livez and /readyz answer without a key, as Qdrant's whitelist."""
    for path in ("/", "/healthz", "/livez", "/readyz"):
        answer = await request(peer, "GET", path, None)
        assert answer.status_code == 200, (path, answer.text)
    assert (await request(peer, "GET", "/openapi.json", None)).status_code == 401


async def test_no_key_appears_in_the_logs(
    peer: SimPeer, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused and accepted calls are logged without any key, right or wrong."""
    caplog.set_level(logging.DEBUG)
    await request(peer, "GET", "/cluster", WRONG_KEY)
    await request(peer, "GET", "/cluster", None)
    await request(peer, "PUT", "/cluster/metadata/keys/k", RO_KEY, 1)
    await request(peer, "PUT", "/cluster/metadata/keys/k", RW_KEY, 1)
    refused = [r for r in caplog.records if r.name == "refimpl.api.auth"]
    assert len(refused) >= 3 and "refused GET /cluster" in caplog.text
    for key in (RW_KEY, RO_KEY, WRONG_KEY):
        assert key not in caplog.text
    assert RW_KEY not in repr(KEYS) and RW_KEY not in repr(ApiKeys.from_config(KEYS))


def test_read_only_classification_follows_qdrant() -> None:
    """GET reads; POST reads only on the searching point endpoints; other methods write."""
    assert is_read_only("GET", "/collections/c")
    assert is_read_only("POST", "/collections/c/points")
    for suffix in ("count", "scroll", "query", "query/batch", "search", "search/batch"):
        assert is_read_only("POST", f"/collections/c/points/{suffix}")
    assert not is_read_only("POST", "/collections/c/points/delete")
    assert not is_read_only("POST", "/collections/c/points/payload")
    assert not is_read_only("POST", "/collections/c/points/search/../delete")
    assert not is_read_only("POST", "/cluster/recover")
    assert not is_read_only("PUT", "/collections/c/points")
    assert not is_read_only("PATCH", "/collections/c")


def test_presented_key_reads_api_key_then_bearer() -> None:
    """``api-key`` wins over ``Authorization: Bearer``; other schemes carry no key."""
    assert presented_key([(b"api-key", b"a"), (b"authorization", b"Bearer b")]) == "a"
    assert presented_key([(b"authorization", b"bearer b")]) == "b"
    assert presented_key([(b"authorization", b"Basic b")]) is None
    assert presented_key([]) is None


def test_a_bad_secret_value_is_not_echoed_by_the_config_error(tmp_path: Path) -> None:
    """A mistyped key stops the peer with a message naming the key, not showing its value."""
    config = tmp_path / "config.yaml"
    config.write_text("service:\n  api_key: [9417262]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "service.api_key" in str(caught.value) and "9417262" not in str(caught.value)
