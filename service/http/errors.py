"""The one error body, written here for every endpoint: :class:`service.errors.ErrorResponse`
(``{"error": {"code", "message"}}``), or on the v2 protocol's paths the protocol's own
``{"error": "message"}`` (what tritonclient and KServe clients parse), code alongside."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from service.errors import ErrorDetail, ErrorResponse, ServiceError

log = logging.getLogger("attnserve")

V2_PREFIX = "/v2"


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict | None = None
) -> JSONResponse:
    if request.url.path.startswith(V2_PREFIX):
        body: dict = {"error": message, "code": code}
    else:
        body = ErrorResponse(error=ErrorDetail(code=code, message=message)).model_dump()
    return JSONResponse(body, status, headers=headers)


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

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error")
        message = f"internal error: {type(error).__name__}"
        return error_response(request, 500, "internal_error", message)
