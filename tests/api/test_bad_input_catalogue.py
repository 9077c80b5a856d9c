"""A catalogue of malformed requests (issue 10): each gets a 4xx with a message that says what to
fix, and nothing is half-applied — the collection's points, config and placement are unchanged.

Runs against a simulated 3-peer cluster in one process (virtual time), through the real app.
"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from refimpl.peer.harness import SimCluster, SimPeer
from tests.api.test_data_api import call, http, three

DIM = 4
GOOD = [0.1, 0.2, 0.3, 0.4]
BIG = 2**70

# (method, path, body: JSON value or raw bytes, words the error message must contain)
Case = tuple[str, str, Any, tuple[str, ...]]
CASES: list[Case] = [
    ("PUT", "/collections/c/points", {"points": [{"id": 1, "vector": [0.1, 0.2]}]}, ("dim",)),
    ("PUT", "/collections/c/points", {"points": [{"id": 1, "vector": [0.1] * 5}]}, ("dim",)),
    ("PUT", "/collections/c/points", b'{"points": [{"id": 1, "vector": [NaN, 0, 0, 0]}]}', ("",)),
    (
        "PUT",
        "/collections/c/points",
        b'{"points": [{"id": 1, "vector": [Infinity, 0, 0, 0]}]}',
        ("",),
    ),
    ("PUT", "/collections/c/points", {"points": [{"id": -1, "vector": GOOD}]}, ("id",)),
    ("PUT", "/collections/c/points", {"points": [{"id": "not-a-uuid", "vector": GOOD}]}, ("id",)),
    ("PUT", "/collections/c/points", {"points": [{"id": BIG, "vector": GOOD}]}, ("id",)),
    ("PUT", "/collections/c/points", {"points": [{"id": 1.5, "vector": GOOD}]}, ("id",)),
    ("PUT", "/collections/c/points", {"points": [{"id": True, "vector": GOOD}]}, ("id",)),
    ("PUT", "/collections/c/points", {"points": [{"vector": GOOD}]}, ("id",)),
    ("PUT", "/collections/c/points", {"points": [{"id": 1}]}, ("vector",)),
    (
        "PUT",
        "/collections/c/points",
        {"points": [{"id": 1, "vector": GOOD, "colour": 1}]},
        ("colour",),
    ),
    ("PUT", "/collections/c/points", {"points": [{"id": 1, "vector": "abc"}]}, ("vector",)),
    (
        "PUT",
        "/collections/c/points",
        {"points": [{"id": 1, "vector": GOOD, "payload": [1]}]},
        ("payload",),
    ),
    ("PUT", "/collections/c/points", {"points": "many"}, ("points",)),
    ("PUT", "/collections/c/points", {"batch": {"ids": [1, 2], "vectors": [GOOD]}}, ("",)),
    ("PUT", "/collections/c/points", b'{"points": [', ("json",)),
    ("PUT", "/collections/c/points", b"", ("",)),
    # An integer of over 4300 digits (json.loads raises a bare ValueError) and a vector
    # component no float can hold (math.isfinite overflows): both were 500s (issue 6).
    ("PUT", "/collections/c/points", b'{"points": [{"id": ' + b"7" * 5000 + b"}]}", ("digits",)),
    (
        "PUT",
        "/collections/c/points",
        b'{"points": [{"id": 1, "vector": [0.1, 0.2, 0.3, 1' + b"0" * 400 + b"]}]}",
        ("32-bit float",),
    ),
    ("PUT", "/collections/c/points", [1, 2, 3], ("",)),
    ("PUT", "/collections/c/points?wait=perhaps", {"points": []}, ("wait",)),
    ("PUT", "/collections/missing/points", {"points": [{"id": 1, "vector": GOOD}]}, ("missing",)),
    ("POST", "/collections/missing/points/query", {"query": GOOD}, ("missing",)),
    ("POST", "/collections/c/points/query", {"query": GOOD, "limit": -1}, ("limit",)),
    ("POST", "/collections/c/points/query", {"query": GOOD, "limit": 10**9}, ("limit",)),
    ("POST", "/collections/c/points/query", {"query": [0.1, 0.2]}, ("dim",)),
    ("POST", "/collections/c/points/query", {"query": []}, ("",)),
    ("POST", "/collections/c/points/query", {"query": GOOD, "filter": {"must": 5}}, ("must",)),
    (
        "POST",
        "/collections/c/points/query",
        {"query": GOOD, "filter": {"must": [{"key": "a", "range": {"gt": "x"}}]}},
        ("",),
    ),
    (
        "POST",
        "/collections/c/points/query",
        {"query": GOOD, "filter": {"must": [{"key": "a", "bogus": {}}]}},
        ("",),
    ),
    ("POST", "/collections/c/points/scroll", {"limit": 0}, ("limit",)),
    ("POST", "/collections/c/points/scroll", {"offset": {"x": 1}}, ("point id",)),
    ("POST", "/collections/c/points/count", {"filter": "all"}, ("filter",)),
    ("POST", "/collections/c/points", {"ids": ["nope"]}, ("id",)),
    ("POST", "/collections/c/points/delete", {"points": [1], "filter": {}}, ("",)),
    ("POST", "/collections/c/points/delete", {"filter": {"should": {"key": 1}}}, ("",)),
    ("PUT", "/collections/c", {"vectors": {"size": DIM, "distance": "Cosine"}}, ("exists",)),
    ("PUT", "/collections/d", {"vectors": {"size": 0, "distance": "Cosine"}}, ("size",)),
    ("PUT", "/collections/d", {"vectors": {"size": DIM, "distance": "Hamming"}}, ("distance",)),
    (
        "PUT",
        "/collections/d",
        {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 0},
        ("shard",),
    ),
    (
        "PUT",
        "/collections/d",
        {"vectors": {"size": DIM, "distance": "Dot"}, "replication_factor": 0},
        ("replica",),
    ),
    (
        "POST",
        "/collections/c/cluster",
        {"move_shard": {"shard_id": 0, "from_peer_id": 1, "to_peer_id": 2}},
        ("peer",),
    ),
    ("POST", "/collections/c/cluster", {"move_shard": {"shard_id": 99}}, ("",)),
    ("POST", "/collections/c/cluster", {"teleport_shard": {}}, ("",)),
    ("DELETE", "/cluster/peer/12345", None, ("12345",)),
]


@pytest.fixture
async def sim() -> AsyncIterator[SimCluster]:
    async with trio.open_nursery() as nursery:
        yield SimCluster(nursery, seed=17, with_data=True)
        nursery.cancel_scope.cancel()


async def snapshot_of(peer: SimPeer) -> tuple[Any, ...]:
    """Everything a bad request must leave unchanged: points, config and shard placement."""
    points = await call(peer, "POST", "/collections/c/points/scroll",
                        {"limit": 100, "with_vector": True, "with_payload": True})  # fmt: skip
    info = await call(peer, "GET", "/collections/c")
    placement = await call(peer, "GET", "/collections/c/cluster")
    collections = await call(peer, "GET", "/collections")
    return points["points"], info["config"], placement, collections


async def test_every_malformed_request_is_a_clear_4xx_and_changes_nothing(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """At least 40 malformed requests: 4xx, Qdrant's error envelope, a useful message, no change."""
    assert len(CASES) >= 40
    peers = await three(sim)
    await call(peers[0], "PUT", "/collections/c",
               {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 3,
                "replication_factor": 1})  # fmt: skip
    await trio.sleep(1.0)
    await call(peers[0], "PUT", "/collections/c/points?wait=true",
               {"points": [{"id": i, "vector": GOOD, "payload": {"a": i}} for i in range(5)]})  # fmt: skip
    before = await snapshot_of(peers[1])
    problems = []
    for method, path, body, words in CASES:
        async with http(peers[2]) as client:
            if isinstance(body, bytes):
                response = await client.request(method, path, content=body)
            else:
                response = await client.request(method, path, json=body)
        problem = _check(response, words)
        if problem:
            problems.append(f"{method} {path} {str(body)[:60]}: {problem}")
    assert problems == []
    await trio.sleep(1.0)
    assert await snapshot_of(peers[1]) == before


def _check(response: httpx.Response, words: tuple[str, ...]) -> str | None:
    """None when the answer is a 4xx envelope whose message contains every word."""
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}: {response.text[:200]}"
    try:
        message = response.json()["status"]["error"]
    except (ValueError, KeyError, TypeError):
        return f"not Qdrant's error envelope: {response.text[:200]}"
    if not isinstance(message, str) or len(message) < 10:
        return f"message too short to help: {message!r}"
    missing = [w for w in words if w.lower() not in message.lower()]
    return f"message {message!r} lacks {missing}" if missing else None
