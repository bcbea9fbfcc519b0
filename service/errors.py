"""Errors are values: a machine-readable code, an HTTP status, and a message a user can act on.

Every failure the service reports is a :class:`ServiceError`; :mod:`service.http.errors` turns
it into the one error body, :class:`ErrorResponse` (``{"error": {"code": ..., "message": ...}}``),
with its status (and headers such as ``Retry-After``). Code that raises one never needs to know
about HTTP responses.
"""

from __future__ import annotations

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """The error body of every endpoint but the v2 protocol's (see :mod:`service.http.errors`)."""

    error: ErrorDetail


class ServiceError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ServiceError):
    status, code = 400, "bad_request"


class InvalidImage(ServiceError):
    """Not an image, corrupt or truncated."""

    status, code = 400, "invalid_image"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class PayloadTooLarge(ServiceError):
    """Body over ``max_upload_bytes`` or image over ``max_image_pixels``."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status, code = 415, "unsupported_media_type"


class InvalidParameter(ServiceError):
    status, code = 422, "invalid_parameter"


class NonFiniteOutput(ServiceError):
    """The model's output for this input holds NaN or Inf: the input (finite, but far outside
    what the model was trained on, such as 1e30 everywhere) overflowed it. The client must
    change the input, so it is a 4xx; the model serves every other input as before."""

    status, code = 422, "non_finite_output"


class ClientDisconnected(ServiceError):
    """The client went away while its request was queued; it was never computed (499, as
    nginx logs it: no one is left to read the answer)."""

    status, code = 499, "client_closed_request"


class InferenceFailed(ServiceError):
    """The model raised on this input (its batch-mates are unaffected)."""

    status, code = 500, "inference_failed"


class Unavailable(ServiceError):
    """Queue full, model not ready, or shutting down: try again later."""

    status, code = 503, "unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class DeadlineExceeded(ServiceError):
    """The request's deadline passed before it could be computed; it never was."""

    status, code = 504, "deadline_exceeded"
