"""The one error body, written here for every endpoint: :class:`service.errors.ErrorResponse`
(``{"error": {"code", "message"}}``), or on the v2 protocol's paths the protocol's own
``{"error": "message"}`` (what tritonclient and KServe clients parse), code alongside.

Handlers answer the errors routes raise; :class:`UnansweredErrors` answers whatever escapes
them, inside the request context and the request metrics, so that even a 500 carries its
request id and is counted with the status the client saw.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ErrorDetail, ErrorResponse, ServiceError

log = logging.getLogger("attnserve")

V2_PREFIX = "/v2"
#: scope key the HTTP protocol sets when it found a request's framing broken mid-body
#: (:mod:`service.http.protocol`); it has answered 400 itself and closed the connection
FRAMING_ERROR = "attnserve.framing_error"


def error_body(path: str, code: str, message: str) -> dict:
    if path.startswith(V2_PREFIX):
        return {"error": message, "code": code}
    return ErrorResponse(error=ErrorDetail(code=code, message=message)).model_dump()


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(error_body(request.url.path, code, message), status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        return error_response(request, error.status, error.code, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
            for e in error.errors()
        )
        return error_response(request, 422, "invalid_parameter", problems)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(request, error.status_code, code, str(error.detail), error.headers)


class UnansweredErrors:
    """The innermost middleware: answers what escaped the routes and their handlers.

    - The client left before its body arrived (Starlette's ``ClientDisconnect``): 499, as
      nginx logs it, in one debug line; 400 when the protocol found the framing broken (a
      chunk size of ``zz``). Nobody reads either answer: it is what the metrics count.
    - The server's shutdown cancelled the request before it was answered (the drain budget
      ran out, typically on an upload still arriving): a JSON 503 instead of uvicorn's
      plain-text 500.
    - Anything else: one traceback in the log and a JSON 500, both with the request id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            broken = scope.get(FRAMING_ERROR)
            log.debug("client left before its request was read%s", f" ({broken})" if broken else "")
            if not started:
                status, code = (400, "bad_request") if broken else (499, "client_closed_request")
                message = broken or "the client closed the connection before sending its body"
                await self._answer(scope, receive, send, status, code, message)
        except asyncio.CancelledError:
            if started:
                raise
            log.warning("shut down before the request was answered (drain timeout)")
            message = "the service shut down before this request was answered; retry elsewhere"
            await self._answer(scope, receive, send, 503, "unavailable", message)
        except Exception as error:
            log.exception("unhandled error")
            if not started:  # else uvicorn closes the connection: the body cannot be finished
                message = f"internal error: {type(error).__name__}"
                await self._answer(scope, receive, send, 500, "internal_error", message)

    @staticmethod
    async def _answer(
        scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
    ) -> None:
        headers = {"Retry-After": "1"} if status == 503 else None
        response = JSONResponse(error_body(scope["path"], code, message), status, headers=headers)
        await response(scope, receive, send)
