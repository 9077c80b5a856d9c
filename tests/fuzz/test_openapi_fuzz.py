"""Schemathesis against the OpenAPI document a live peer serves: no 5xx, always our envelope.

The schema is read from ``GET /openapi.json`` of a running peer, so every route the API
documents — today's and those added later — is fuzzed without touching this file. Each operation
gets a bounded number of generated requests (``EXAMPLES`` valid ones and as many invalid ones,
schemathesis' positive and negative modes) so the suite stays fast. (The operations are walked
by hand rather than with ``schemathesis.pytest.from_fixture``, which does not run on pytest 9.)

Checks, for every answer: no 5xx except a 503 (spec "Consensus": "collection update operations
will be denied" while no leader is known; that 503 must carry ``Retry-After``); a JSON answer
is Qdrant's envelope — ``{"result", "status": "ok", "time"}`` on success, ``{"status": {"error":
"…"}, "time"}`` with a non-empty message and no ``result`` on failure.
"""

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from refimpl.launcher import LocalCluster

pytestmark = pytest.mark.cluster

EXAMPLES = 8
"""Generated requests per operation (times the number of operations is the suite's cost)."""
UNENVELOPED = {"/", "/openapi.json", "/healthz", "/livez", "/readyz"}
"""Routes that, as in Qdrant, answer outside the envelope (version info, the schema, probes)."""


def served_operations(cluster: LocalCluster) -> list[Any]:
    """Every operation of the OpenAPI document peer 1 serves (any peer answers any request)."""
    schema = schemathesis.openapi.from_url(f"{cluster.peers[1].rest_url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the served document is invalid: {result}"
        operations.append(result.ok())
    return operations


def check_envelope(path: str, status: int, headers: dict[str, str], body: Any) -> None:
    """Assert the error rules above on one answer (``body`` is parsed JSON or None)."""
    assert status < 500 or status == 503, f"server error {status}: {body!r}"
    if status == 503:
        assert headers.get("retry-after"), "a 503 must say when to retry"
    if path in UNENVELOPED or body is None:
        return
    assert isinstance(body, dict), f"not an envelope: {body!r}"
    assert isinstance(body.get("time"), int | float), f"no time in {body!r}"
    if status < 400:
        assert body.get("status") == "ok" and "result" in body, f"bad success envelope {body!r}"
    else:
        error = (
            body.get("status", {}).get("error") if isinstance(body.get("status"), dict) else None
        )
        assert isinstance(error, str) and error, f"bad error envelope {body!r}"
        assert "result" not in body, f"an error answer carries a result: {body!r}"


def test_every_documented_operation_answers_without_5xx_in_our_envelope(
    live_cluster: LocalCluster,
) -> None:
    """Spec "API" (REST): whatever a client sends, a 2xx/4xx envelope, never a crash or a 500."""
    operations = served_operations(live_cluster)
    assert {op.path for op in operations} >= {"/cluster", "/cluster/metadata/keys/{key}"}
    calls: list[str] = []
    session = requests.Session()  # one connection pool for every call: much faster
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # Negative mode filters heavily where little can be invalid (a free-form path
            # string): let hypothesis' filter health check give up early there.
            strict = [HealthCheck.too_slow]
            if mode is GenerationMode.POSITIVE:
                strict.append(HealthCheck.filter_too_much)

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=strict,
            )
            @given(operation.as_strategy(generation_mode=mode))
            def fuzz(case: schemathesis.Case[Any]) -> None:
                note(case.as_curl_command())
                response = case.call(session=session, timeout=30)
                headers = {k.lower(): ", ".join(v) for k, v in response.headers.items()}
                is_json = headers.get("content-type", "").startswith("application/json")
                body = response.json() if is_json and response.content else None
                check_envelope(case.path, response.status_code, headers, body)
                calls.append(case.path)

            try:
                fuzz()
            except (Unsatisfiable, FailedHealthCheck):
                # Nothing (or too little) invalid to generate: no parameters, free-form strings.
                assert mode is GenerationMode.NEGATIVE, operation.path
    # Every operation was really exercised (positive mode always generates).
    assert set(calls) == {op.path for op in operations}
    assert live_cluster.leader() is not None  # and the cluster is still whole
