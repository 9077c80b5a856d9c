"""Shared pieces of the real-process cluster tests: a started cluster and plain REST calls."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from refimpl.launcher import LocalCluster


@contextmanager
def running_cluster(root: Path, peers: int, tick_period_ms: int = 50) -> Iterator[LocalCluster]:
    """``peers`` real peers under ``root``: the first with ``--uri``, the others joined with
    ``--bootstrap``; yielded once all of them are voters, stopped afterwards."""
    with LocalCluster(root, peers=peers, tick_period_ms=tick_period_ms) as c:
        c.start_first()
        for i in range(1, peers):
            c.start_joiner(i)
        c.wait_for_voters(peers, timeout_s=60)
        yield c


def call(url: str, method: str, path: str, body: Any = None) -> httpx.Response:
    """One REST request (no retry: the tests look at every answer)."""
    return httpx.request(method, url + path, json=body, timeout=60)


def ok(url: str, method: str, path: str, body: Any = None) -> Any:
    """The ``result`` of a request that must answer 200."""
    response = call(url, method, path, body)
    assert response.status_code == 200, response.text
    return response.json()["result"]
