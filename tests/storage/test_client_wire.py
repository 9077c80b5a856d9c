"""The official qdrant-client's own requests parse, and our answers pass its response models
(the wire shapes of the client notes, §3 and §6), through a tiny one-shard HTTP server."""

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from refimpl.index import Distance
from refimpl.points import (
    BadRequest,
    parse_count,
    parse_delete,
    parse_query,
    parse_query_batch,
    parse_retrieve,
    parse_scroll,
    parse_upsert,
)
from refimpl.storage import ShardConfig, ShardStore

DIM = 4


def _routes(store: ShardStore) -> dict[tuple[str, str], Callable[[Any], Any]]:
    """One collection ``c`` served by one shard: the points endpoints the client calls."""
    base = "/collections/c/points"
    return {
        ("PUT", base): lambda b: store.apply(parse_upsert(b, DIM)).to_json(),
        ("POST", base): lambda b: [
            r.to_json() for r in store.retrieve(*_retrieve_args(parse_retrieve(b)))
        ],
        ("POST", base + "/delete"): lambda b: store.apply(parse_delete(b)).to_json(),
        ("POST", base + "/count"): lambda b: {"count": store.count(parse_count(b).filter)},
        ("POST", base + "/scroll"): lambda b: store.scroll(parse_scroll(b)).to_json(),
        ("POST", base + "/query"): lambda b: {
            "points": [p.to_json() for p in store.search(parse_query(b, DIM))]
        },
        ("POST", base + "/query/batch"): lambda b: [
            {"points": [p.to_json() for p in hits]}
            for hits in store.search_batch(parse_query_batch(b, DIM))
        ],
    }


def _retrieve_args(request: Any) -> tuple[Any, Any, bool]:
    return request.ids, request.with_payload, request.with_vector


@pytest.fixture(scope="module")
def client() -> Iterator[QdrantClient]:
    store = ShardStore.in_memory(ShardConfig(DIM, Distance.DOT))
    routes = _routes(store)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            route = routes.get((method, self.path.split("?")[0]))
            try:
                assert route is not None, f"no route for {method} {self.path}"
                status, doc = 200, {"result": route(body), "status": "ok", "time": 0.0}
            except BadRequest as error:
                status, doc = error.status_code, {"status": {"error": str(error)}, "time": 0.0}
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            self._answer("PUT")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    qdrant = QdrantClient(url=f"http://127.0.0.1:{server.server_address[1]}",
                          check_compatibility=False)  # fmt: skip
    yield qdrant
    qdrant.close()
    server.shutdown()
    server.server_close()
    thread.join()


U = str(uuid.UUID(int=7))


def test_client_round_trip(client: QdrantClient) -> None:
    """Upsert (both forms), retrieve, count, scroll, query, batch query and delete, as sent
    and parsed by qdrant-client 1.20."""
    client.upsert("c", [models.PointStruct(id=i, vector=[float(i), 1, 0, 0], payload={"i": i})
                        for i in range(1, 6)])  # fmt: skip
    result = client.upsert("c", models.Batch(ids=[U], vectors=[[0.0, 0, 0, 9]], payloads=[{}]))
    assert result.status == models.UpdateStatus.COMPLETED and result.operation_id == 2
    got = client.retrieve("c", [3, U], with_vectors=True)
    assert [(r.id, r.payload) for r in got] == [(3, {"i": 3}), (U, {})]
    assert got[0].vector == [3.0, 1.0, 0.0, 0.0]
    flt = models.Filter(must=[models.FieldCondition(key="i", range=models.Range(gte=2))])
    assert client.count("c", count_filter=flt).count == 4
    records, nxt = client.scroll("c", limit=4)
    assert [r.id for r in records] == [1, 2, 3, 4] and nxt == 5
    hits = client.query_points("c", query=[1.0, 0, 0, 0], limit=2, query_filter=flt,
                               search_params=models.SearchParams(hnsw_ef=32)).points  # fmt: skip
    assert [(h.id, h.score) for h in hits] == [(5, 5.0), (4, 4.0)]
    batch = client.query_batch_points("c", [models.QueryRequest(query=[0.0, 0, 0, 1], limit=1),
                                            models.QueryRequest(query=3, limit=1)])  # fmt: skip
    assert [b.points[0].id for b in batch] == [U, 5]
    client.delete("c", models.FilterSelector(filter=flt))
    client.delete("c", [U])
    assert [r.id for r in client.scroll("c")[0]] == [1]


def test_client_sees_our_error_message(client: QdrantClient) -> None:
    """A wrong dimension comes back as a 400 whose text says what to fix."""
    with pytest.raises(UnexpectedResponse) as caught:
        client.upsert("c", [models.PointStruct(id=1, vector=[1.0, 2.0])])
    assert caught.value.status_code == 400
    assert b"Vector dimension error: expected dim: 4, got 2" in caught.value.content
