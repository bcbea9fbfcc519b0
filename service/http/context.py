"""Per-request context as a plain ASGI middleware: the typed :class:`RequestInfo` (the request
id, accepted from ``X-Request-ID`` or generated, returned in the response and on every log line;
the model, which the protocol fills in) and one access log line per request."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import REQUEST_ID_HEADER, RequestInfo, accept_request_id, current_request

access_log = logging.getLogger("attnserve.access")
#: probes and scrapes arrive every few seconds, and a client that left (499) reads nothing:
#: logged at debug level only
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"})


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = accept_request_id(headers.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1"))
        info = RequestInfo(request_id=rid)
        token = current_request.set(info)
        started, status = time.perf_counter(), 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), rid.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.log(
                logging.DEBUG if scope["path"] in QUIET_PATHS or status == 499 else logging.INFO,
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "model": info.model,
                },
            )
            current_request.reset(token)
