"""The wrapper every ``inference.GRPCInferenceService`` RPC runs in (:mod:`.servicer`).

:func:`rpc` is the gRPC counterpart of the HTTP layer's context and metrics middleware: the
request id (``x-request-id`` metadata, returned in the trailers), one access log line, a
:class:`~service.errors.ServiceError` turned into its status code (:mod:`.status`), and for
ModelInfer the in-flight count that the SIGTERM drain waits for and the ``attnserve_requests``
counter under ``endpoint="grpc_infer"``, whose ``status`` label is the HTTP status the same
failure has over HTTP (so one error-ratio rule covers both protocols).

It is apart from the servicer because it needs none of the generated protobuf modules, whose
``inference.*`` names clash with tritonclient's in a test process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from typing import Any, NoReturn, TypeVar

import grpc

from service.errors import ServiceError
from service.logs import REQUEST_ID_HEADER, RequestInfo, accept_request_id, current_request
from service.metrics import UNKNOWN_MODEL
from service.protocols.grpc.status import status_code

log = logging.getLogger("attnserve")
access_log = logging.getLogger("attnserve.access")

INFER_ENDPOINT = "grpc_infer"
#: probes arrive every few seconds: logged at debug level only
QUIET_METHODS = frozenset({"ServerLive", "ServerReady", "ModelReady"})
#: How much later the server's copy of a call's deadline ends than the client's (its transit
#: and the server's event loop: measured 0-3 ms on loopback, so a client timer's cancel arrives
#: just before the server's own deadline)
DEADLINE_SKEW_S = 0.05

Request = TypeVar("Request")
Response = TypeVar("Response")
Method = Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Response]]


def rpc(method: Method) -> Method:
    """Wrap one RPC: request id, access log, error status, and metrics for ModelInfer."""
    name = method.__name__
    endpoint = INFER_ENDPOINT if name == "ModelInfer" else None

    @functools.wraps(method)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext):
        metadata_in = dict(context.invocation_metadata() or ())
        info = RequestInfo(request_id=accept_request_id(metadata_in.get(REQUEST_ID_HEADER)))
        token = current_request.set(info)
        context.set_trailing_metadata(((REQUEST_ID_HEADER, info.request_id),))
        started, status = time.perf_counter(), 499
        tracking = self.state.track_request() if endpoint else nullcontext()
        try:
            with tracking:
                response = await method(self, request, context)
            status = 200
            return response
        except asyncio.CancelledError:
            # grpc cancels the handler when the client cancels, and also when the call's own
            # deadline passes while nothing in the engine watches it (during compute): that
            # one is the 504 the engine answers for its other deadlines, not a client gone
            status = 504 if deadline_passed(context) else 499
            raise
        except ServiceError as error:
            status = error.status
            trailers = [(k.lower(), v) for k, v in error.headers.items()]
            trailers.append((REQUEST_ID_HEADER, info.request_id))
            await abort(context, status_code(error), error.message, tuple(trailers))
        except Exception as error:
            if isinstance(error, grpc.aio.AbortError):
                raise
            status = 500
            log.exception("unhandled error in %s", name)
            details = f"internal error: {type(error).__name__}"
            await abort(context, grpc.StatusCode.INTERNAL, details)
        finally:
            duration_s = time.perf_counter() - started
            if endpoint is not None:
                model = info.model or UNKNOWN_MODEL
                self.state.metrics.requests.labels(model, endpoint, str(status)).inc()
                self.state.metrics.request_duration.labels(model, endpoint).observe(duration_s)
            access_log.log(
                logging.DEBUG if name in QUIET_METHODS else logging.INFO,
                "grpc %s %d",
                name,
                status,
                extra={"rpc": name, "status": status, "model": info.model,
                       "duration_ms": round(duration_s * 1000, 3)},
            )  # fmt: skip
            current_request.reset(token)

    return handler  # type: ignore[return-value]


async def abort(
    context: grpc.aio.ServicerContext,
    code: grpc.StatusCode,
    details: str,
    trailers: tuple[tuple[str, str], ...] = (),
) -> NoReturn:
    """``context.abort``, for a call that may have ended meanwhile.

    When the call's deadline passes (or its client cancels) just as the engine gives up on it,
    grpc core has ended the call, but grpc's own cancellation task may not have noticed yet:
    sending the status then fails with cygrpc's ``ExecuteBatchError``, which grpc logs as an
    unexpected traceback. The client already has its DEADLINE_EXCEEDED or CANCELLED, so the
    handler ends the way grpc ends a cancelled one, quietly.
    """
    try:
        await context.abort(code, details, trailers)
    except grpc.aio.AbortError:
        raise
    except Exception as error:
        log.debug("the call ended before its status could be sent: %r", error)
        raise asyncio.CancelledError from error


def deadline_passed(context: grpc.aio.ServicerContext) -> bool:
    """Whether the call's gRPC deadline has passed, as the client sees it: it travels as a
    relative timeout, so the server's copy starts, and ends, a little after the client's."""
    remaining_s = context.time_remaining()
    return remaining_s is not None and remaining_s <= DEADLINE_SKEW_S
