"""A call that grpc core has ended (its deadline passed, its client cancelled) just as the
engine gives up on it ends quietly: no traceback in the log, and its status still counted.

The race behind it is a few microseconds wide in a real server (the reliability suite's gRPC
chaos test met it once in CI), so this test plays grpc's part with a context whose ``abort``
fails the way cygrpc's does when the call is already over.
"""

import asyncio
import logging
from typing import Any

import grpc
import pytest
from grpc._cython import cygrpc  # the error grpc raises for a batch on an ended call

from service.errors import DeadlineExceeded
from service.protocols.grpc.calls import rpc


class EndedCall:
    """The servicer context of a call that grpc core has already ended."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", "ended-call"),)

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def time_remaining(self) -> float:
        return 0.0

    async def abort(self, code: grpc.StatusCode, details: str = "", trailers: Any = ()) -> None:
        raise cygrpc.ExecuteBatchError('Failed "execute_batch"')


class Servicer:
    state = None  # only ModelInfer touches it

    @rpc
    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        raise DeadlineExceeded("the request's deadline passed while its image was being decoded")


def test_an_error_for_an_ended_call_ends_it_as_grpc_ends_a_cancelled_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(Servicer().ServerMetadata(None, EndedCall()))
    access = [r for r in caplog.records if r.name == "attnserve.access"]
    assert [(r.getMessage(), r.levelno) for r in access] == [
        ("grpc ServerMetadata 504", logging.INFO)
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
