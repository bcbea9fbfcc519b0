"""The API key check that protects management, over HTTP (the ``Authorization`` header) and
gRPC (the ``authorization`` metadata) alike: a Bearer token compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Request
from pydantic import SecretStr

from service.errors import Unauthorized
from service.state import get_state


def check_api_key(key: SecretStr | None, authorization: str) -> None:
    """Raise Unauthorized unless a key is configured and ``authorization`` is ``Bearer <key>``."""
    scheme, _, token = authorization.partition(" ")
    if (
        key is None
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(token.strip().encode(), key.get_secret_value().encode())
    ):
        raise Unauthorized("management needs 'Authorization: Bearer <api key>'")


def require_api_key(request: Request) -> None:
    """The HTTP routers' dependency: the management and the v2 repository endpoints."""
    check_api_key(get_state(request).settings.api_key, request.headers.get("authorization", ""))
