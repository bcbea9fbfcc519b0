"""Every service error has a gRPC status of its own meaning, derived from its error code."""

import grpc
import pytest

from service.errors import InferenceFailed, ServiceError
from service.protocols.grpc.status import status_code


def every_error() -> list[type[ServiceError]]:
    found, stack = [], [ServiceError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("error", every_error(), ids=lambda cls: cls.__name__)
def test_each_error_has_its_status(error: type[ServiceError]) -> None:
    code = status_code(error("message"))
    if error in (ServiceError, InferenceFailed):
        assert code == grpc.StatusCode.INTERNAL
    else:
        assert code != grpc.StatusCode.INTERNAL, error.__name__


def test_http_and_grpc_agree_on_client_and_server_errors() -> None:
    client_codes = {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
    }
    for error in every_error():
        is_client_error = 400 <= error.status < 500
        assert (status_code(error("m")) in client_codes) == is_client_error, error.__name__
