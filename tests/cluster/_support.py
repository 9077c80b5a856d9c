"""Shared pieces of the real-process cluster tests: a started cluster, plain REST calls, and
calls that wait out a 503 (no leader for a moment) the way a client following Retry-After does."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from qdrant_client.http.exceptions import UnexpectedResponse

from refimpl.launcher import LocalCluster

T = TypeVar("T")


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


def call_retrying(
    url: str, method: str, path: str, body: Any = None, *, patience_s: float = 20.0, **kwargs: Any
) -> httpx.Response:
    """One REST request, sent again after the answer's ``Retry-After`` while it is 503; the
    503 itself once ``patience_s`` has passed (a longer outage is the test's to judge).
    ``kwargs`` go to httpx (``files``, ``headers``)."""
    deadline = time.monotonic() + patience_s
    while True:
        response = httpx.request(method, url + path, json=body, timeout=60, **kwargs)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(float(response.headers.get("Retry-After", "0.2")))


def ok_retrying(url: str, method: str, path: str, body: Any = None) -> Any:
    """The ``result`` of a request that must answer 200 once any 503 is waited out."""
    response = call_retrying(url, method, path, body)
    assert response.status_code == 200, (method, path, response.text)
    return response.json()["result"]


def client_retrying(call: Callable[[], T], attempts: int = 50) -> T:
    """``call()`` (a qdrant-client call), again after Retry-After while the server answers 503."""
    for _ in range(attempts - 1):
        try:
            return call()
        except UnexpectedResponse as exc:
            if exc.status_code != 503:
                raise
            time.sleep(float(exc.headers.get("retry-after", "1")))
    return call()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    """Poll ``predicate`` every 0.1 s; True as soon as it holds, False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
