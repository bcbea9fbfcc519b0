"""Service errors as gRPC status codes, derived from the same error codes the HTTP side answers
with (:mod:`service.errors`), so a failure means the same thing over both protocols."""

from __future__ import annotations

from grpc import StatusCode

from service.errors import (
    BadRequest,
    ClientDisconnected,
    DeadlineExceeded,
    InferenceFailed,
    InvalidImage,
    InvalidParameter,
    NonFiniteOutput,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)

STATUS_CODES: dict[str, StatusCode] = {
    BadRequest.code: StatusCode.INVALID_ARGUMENT,
    InvalidImage.code: StatusCode.INVALID_ARGUMENT,
    InvalidParameter.code: StatusCode.INVALID_ARGUMENT,
    UnsupportedMediaType.code: StatusCode.INVALID_ARGUMENT,
    # the input overflowed the model (422 over HTTP): the client must change it
    NonFiniteOutput.code: StatusCode.INVALID_ARGUMENT,
    Unauthorized.code: StatusCode.UNAUTHENTICATED,
    NotFound.code: StatusCode.NOT_FOUND,
    # what grpc itself answers for a message over the receive limit
    PayloadTooLarge.code: StatusCode.RESOURCE_EXHAUSTED,
    ClientDisconnected.code: StatusCode.CANCELLED,
    InferenceFailed.code: StatusCode.INTERNAL,
    # queue full, loading, draining: retry later, as Triton answers a full queue
    Unavailable.code: StatusCode.UNAVAILABLE,
    DeadlineExceeded.code: StatusCode.DEADLINE_EXCEEDED,
}


def status_code(error: ServiceError) -> StatusCode:
    """The gRPC status of ``error``; an error code without an entry is INTERNAL."""
    return STATUS_CODES.get(error.code, StatusCode.INTERNAL)
