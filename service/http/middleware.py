"""Per-request metrics and the in-flight count, as a plain ASGI middleware (no body
buffering, no interference with disconnect detection). The model label comes from the typed
:class:`~service.logs.RequestInfo` the protocol filled in."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import request_info
from service.metrics import UNKNOWN_MODEL
from service.state import AppState


def endpoint_of(path: str) -> str | None:
    """The metric's endpoint label for inference routes; None for everything else."""
    if path == "/predict":
        return "predict"
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return "v2_infer"
    return None


class RequestMetrics:
    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = endpoint_of(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500
        metrics = self.state.metrics

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with self.state.track_request():
                await self.app(scope, receive, send_with_status)
        finally:
            model = request_info().model or UNKNOWN_MODEL
            metrics.requests.labels(model, endpoint, str(status)).inc()
            metrics.request_duration.labels(model, endpoint).observe(time.perf_counter() - started)
