"""REST on a real ASGI stack (Starlette under hypercorn's trio worker), Qdrant-compatible.

:mod:`~refimpl.api.app` holds the envelopes and the cluster endpoints;
:mod:`~refimpl.api.openapi` the OpenAPI document of what is served;
:mod:`~refimpl.api.auth` the API keys (``service.api_key``, ``service.read_only_api_key``).
"""

from refimpl.api.app import QDRANT_VERSION, ApiContext, ApiError, create_app, error, ok
from refimpl.api.auth import ApiKeys, with_api_keys
from refimpl.api.openapi import openapi_document

__all__ = [
    "QDRANT_VERSION",
    "ApiContext",
    "ApiError",
    "ApiKeys",
    "create_app",
    "error",
    "ok",
    "openapi_document",
    "with_api_keys",
]
