"""REST authentication: Qdrant's ``service.api_key`` and ``service.read_only_api_key``.

Rules (as Qdrant's REST API, ``src/common/auth``):

* With neither key configured (or both empty) the API is open and this module does nothing.
* Otherwise every request must carry a key, in the ``api-key`` header or as
  ``Authorization: Bearer <key>``. No key: 401 "Must provide an API key or an Authorization
  bearer token". A key that matches neither: 401 "Invalid API key".
* The read-write key may call everything. The read-only key may call ``GET`` (and ``HEAD``)
  and the POST endpoints that only read — retrieve, count, scroll, query, search, recommend,
  discover, facet and their batch/group forms (:data:`READ_ONLY_POST_PATHS`); anything else
  (writes, collection and cluster changes) is 403 with a message naming the method and path.
* ``/``, ``/healthz``, ``/livez`` and ``/readyz`` stay open, as in Qdrant: orchestrators probe
  them without credentials, and ``GET /`` is where clients read the server version.
* Keys are compared in constant time, and on fixed-length digests so that not even the key's
  length leaks through timing. A key is never logged: a refused request is logged with its
  method, path, client address and the reason only.

Theory of operation: :class:`ApiKeyMiddleware` is a plain ASGI wrapper around the Starlette
app (:func:`with_api_keys`); it decides from the request line and headers alone, before any
route runs, and answers refusals itself in Qdrant's error envelope.
"""

import enum
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from refimpl.config import ServiceConfig

__all__ = [
    "OPEN_PATHS",
    "READ_ONLY_POST_PATHS",
    "Access",
    "ApiKeyMiddleware",
    "ApiKeys",
    "is_read_only",
    "with_api_keys",
]

log = logging.getLogger("refimpl.api.auth")

OPEN_PATHS = ("/", "/healthz", "/livez", "/readyz")
"""Paths answered without a key (Qdrant whitelists the same; ``/readyz`` and ``/livez`` also
with anything after them)."""

READ_ONLY_POST_PATHS = (
    "",
    "/count",
    "/discover",
    "/discover/batch",
    "/facet",
    "/query",
    "/query/batch",
    "/query/groups",
    "/recommend",
    "/recommend/batch",
    "/recommend/groups",
    "/scroll",
    "/search",
    "/search/batch",
    "/search/groups",
    "/search/matrix/offsets",
    "/search/matrix/pairs",
)
"""Suffixes after ``/collections/{name}/points`` of the POST calls that only read (the empty
suffix is ``POST …/points``, retrieve by ids)."""

_READ_ONLY_POST = re.compile(
    r"/collections/[^/]+/points(?:"
    + "|".join(re.escape(suffix) for suffix in READ_ONLY_POST_PATHS)
    + r")/?"
)


class Access(enum.Enum):
    """What a presented key allows."""

    READ_WRITE = "read-write"
    READ_ONLY = "read-only"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class ApiKeys:
    """The configured keys, kept only as SHA-256 digests (never the keys themselves)."""

    read_write_digest: bytes | None
    read_only_digest: bytes | None

    @classmethod
    def from_config(cls, service: ServiceConfig) -> "ApiKeys | None":
        """The keys of ``service``, or None when neither is set (empty counts as unset)."""
        keys = [
            secret.get_secret_value() if secret is not None else ""
            for secret in (service.api_key, service.read_only_api_key)
        ]
        if not any(keys):
            return None
        read_write, read_only = (_digest(key) if key else None for key in keys)
        return cls(read_write, read_only)

    def check(self, presented: str) -> Access | None:
        """The access ``presented`` grants, or None if it matches neither key."""
        # Hash first: compare_digest on equal-length digests hides even the key's length.
        # Both comparisons always run, so timing does not say which key was close.
        given = _digest(presented)
        is_rw = self.read_write_digest is not None and hmac.compare_digest(
            given, self.read_write_digest
        )
        is_ro = self.read_only_digest is not None and hmac.compare_digest(
            given, self.read_only_digest
        )
        if is_rw:
            return Access.READ_WRITE
        if is_ro:
            return Access.READ_ONLY
        return None


def is_open(path: str) -> bool:
    """True for the health and version paths that need no key."""
    return path in ("/", "/healthz") or path.startswith(("/readyz", "/livez"))


def is_read_only(method: str, path: str) -> bool:
    """True if ``method path`` only reads, so the read-only key may call it.

    ``GET`` and ``HEAD`` read; a ``POST`` reads only on the searching endpoints under
    ``/collections/{name}/points`` listed in :data:`READ_ONLY_POST_PATHS`; every other method
    writes.
    """
    if method in ("GET", "HEAD"):
        return True
    return method == "POST" and _READ_ONLY_POST.fullmatch(path) is not None


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key a request carries: ``api-key``, else ``Authorization: Bearer …``, else None."""
    api_key = bearer = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"api-key" and api_key is None:
            api_key = value.decode("latin-1")
        elif lowered == b"authorization" and bearer is None:
            text = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                bearer = text[7:].strip()
    return api_key if api_key is not None else bearer


def refusal(keys: ApiKeys, method: str, path: str, key: str | None) -> tuple[int, str] | None:
    """Why ``method path`` with ``key`` is refused, as (HTTP status, message), or None."""
    if is_open(path):
        return None
    if key is None:
        return 401, "Unauthorized: Must provide an API key or an Authorization bearer token"
    access = keys.check(key)
    if access is None:
        return 401, "Unauthorized: Invalid API key"
    if access is Access.READ_ONLY and not is_read_only(method, path):
        return 403, (
            f"Forbidden: the read-only API key cannot call {method} {path}; "
            "writes and cluster changes need the read-write api_key"
        )
    return None


class ApiKeyMiddleware:
    """ASGI wrapper that refuses requests without a valid key (see the module rules)."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        refused = refusal(self.keys, method, path, presented_key(list(scope["headers"])))
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, message = refused
        client = scope.get("client")
        log.warning(
            "refused %s %s from %s: %s",
            method,
            path,
            client[0] if client else "unknown client",
            message,
        )
        # The envelope's time is 0: no handler ran.
        body = json.dumps({"status": {"error": message}, "time": 0.0}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="qdrant"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def with_api_keys(app: ASGIApp, service: ServiceConfig) -> ASGIApp:
    """``app`` behind :class:`ApiKeyMiddleware` when ``service`` sets a key, else ``app``."""
    keys = ApiKeys.from_config(service)
    if keys is None:
        return app
    log.info(
        "REST API requires an API key (read-write: %s, read-only: %s)",
        "set" if keys.read_write_digest else "unset",
        "set" if keys.read_only_digest else "unset",
    )
    return ApiKeyMiddleware(app, keys)
