"""Chaos over gRPC (issue 13): the gRPC frontend shares the engine with HTTP, so hostile calls
over it must hold the same invariants while HTTP traffic runs beside them. A few gRPC users
cycle through calls that cancel mid-call, deadlines that expire in the queue and while the
image decodes (the call's own gRPC deadline and Triton's ``timeout`` parameter), a message over
the server's limit, malformed raw contents, BYTES with lying length prefixes, unknown models,
and plain good calls, bounded in time and count.

Every call ends with a status from the allowed set, never INTERNAL or UNKNOWN, and within its
deadline + 1 s. Afterwards the queues are empty, the memory budget is all given back, nothing is
left to decode, a normal call is correct, ``attnserve_requests_total`` counted every call a
handler saw exactly once, with the status its client got (matched by request id against the
access log), and the server logged no traceback. No handler sees a message over the limit
(gRPC's core refuses it before it is read, as in Triton) nor a call cancelled or out of time
before its handler started: those are in no counter.

The client uses ``tritonclient``'s protobuf modules, never the service's own (their
``inference.*`` names would clash in this process).
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from bench.client import Pool
from bench.servers import free_port
from tests.reliability.conftest import API_KEY, Summary
from tests.reliability.corpus.strips import bilevel_strip
from tests.reliability.load import traffic_during
from tests.reliability.test_chaos import DARK, mixed
from tests.service.fake_models import SIZE, faults_repository
from tests.service.server import Server, running_server

Code = grpc.StatusCode
#: Small, so that the message over the limit stays small too (the limit is this + 64 KiB).
UPLOAD_LIMIT = 256 * 1024
MESSAGE_LIMIT = UPLOAD_LIMIT + 64 * 1024
MEMORY_BUDGET_MB = 1024  # on, so that its reserved gauge must come back to 0
GRPC_USERS, HTTP_USERS = 6, 2
CHAOS_S, MAX_CALLS = 10.0, 400
CALL_TIMEOUT_S = 30.0  # calls without a deadline of their own: none may take this long
#: The server's own deadline: generous, since on 2 shared cores good calls wait seconds behind
#: the strips' decodes and the slow model; the chaos calls' deadlines are far shorter.
SERVER_TIMEOUT_MS = 20_000
SLOW_ROUNDS = 25  # one batch of the slow model takes about 0.5 s on one thread
#: A 1-bit PNG of 12 kB that takes a third of a second or more to decode: deadlines pass in it.
STRIP = bilevel_strip(1, 6_000_000)
GOOD = np.zeros((1, 3, SIZE, SIZE), dtype=np.float32)
CHAOS_ID = "grpc-chaos-"
#: The access log line of every call the service handled: its request id and HTTP status.
ACCESS_LINE = re.compile(rf"\[({CHAOS_ID}\d+)\] grpc ModelInfer (\d+)")
#: The status the service counts for each status its client gets, when the call neither
#: cancels nor has a deadline of its own (those race the client: the server may have answered
#: just before, or been cancelled just after).
COUNTED_AS = {Code.OK: "200", Code.INVALID_ARGUMENT: "400", Code.NOT_FOUND: "404",
              Code.UNAVAILABLE: "503", Code.DEADLINE_EXCEEDED: "504"}  # fmt: skip
RACING = {"200", "499", "503", "504"}


def infer_request(model: str, datatype: str, shape: list[int], raw: bytes,
                  **parameters: int) -> pb.ModelInferRequest:  # fmt: skip
    """One input (named for its datatype) in ``raw_input_contents``; ``timeout`` in µs."""
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="image" if datatype == "BYTES" else "input", datatype=datatype,
                       shape=shape)  # fmt: skip
    request.raw_input_contents.append(raw)
    for key, value in parameters.items():
        request.parameters[key].int64_param = value
    return request


def images(*elements: bytes, prefix: Callable[[bytes], int] = len) -> bytes:
    """Triton's BYTES serialisation; ``prefix`` gives each element's (possibly lying) length."""
    return b"".join(struct.pack("<I", prefix(e)) + e for e in elements)


@dataclass(frozen=True)
class Call:
    """One kind of call: its request, the client's deadline, when it cancels, what it may get."""

    name: str
    request: pb.ModelInferRequest
    allowed: frozenset[Code]
    deadline_s: float = CALL_TIMEOUT_S
    cancel_after_s: float | None = None
    reaches_service: bool = True


def calls() -> list[Call]:
    slow = infer_request("slow", "FP32", [1, 3, SIZE, SIZE], GOOD.tobytes())
    busy = {Code.OK, Code.UNAVAILABLE}  # a full queue or memory budget is UNAVAILABLE
    late = busy | {Code.DEADLINE_EXCEEDED}
    bad = {Code.INVALID_ARGUMENT}

    def call(
        name: str,
        request: pb.ModelInferRequest,
        allowed: set[Code],
        deadline_s: float = CALL_TIMEOUT_S,
        cancel_after_s: float | None = None,
        reaches_service: bool = True,
    ) -> Call:
        return Call(name, request, frozenset(allowed), deadline_s, cancel_after_s, reaches_service)

    # A table, one call a line or two: kept as written.
    # fmt: off
    return [
        call("good FP32", infer_request("flip", "FP32", [1, 3, SIZE, SIZE], GOOD.tobytes()), busy),
        call("good PNG", infer_request("flip", "BYTES", [1], images(DARK)), busy),
        call("cancelled in the queue", slow, late | {Code.CANCELLED}, cancel_after_s=0.3),
        call("cancelled while decoding", infer_request("flip", "BYTES", [1], images(STRIP)),
             late | {Code.CANCELLED}, cancel_after_s=0.1),
        call("gRPC deadline in the queue", slow, late, deadline_s=0.25),
        call("timeout parameter in the queue",
             infer_request("slow", "FP32", [1, 3, SIZE, SIZE], GOOD.tobytes(), timeout=250_000),
             late),
        call("gRPC deadline while decoding", infer_request("flip", "BYTES", [1], images(STRIP)),
             late, deadline_s=0.15),
        call("timeout parameter while decoding",
             infer_request("flip", "BYTES", [1], images(STRIP), timeout=150_000), late),
        call("message over the limit",
             infer_request("flip", "BYTES", [1], images(bytes(MESSAGE_LIMIT + 1))),
             {Code.RESOURCE_EXHAUSTED}, reaches_service=False),
        call("message just under the limit (not an image)",
             infer_request("flip", "BYTES", [1], images(bytes(UPLOAD_LIMIT))), bad),
        call("raw contents 4 bytes short",
             infer_request("flip", "FP32", [1, 3, SIZE, SIZE], GOOD.tobytes()[:-4]), bad),
        call("raw contents for 2 images, shape for 1",
             infer_request("flip", "FP32", [1, 3, SIZE, SIZE], GOOD.tobytes() * 2), bad),
        call("BYTES prefix longer than its data",
             infer_request("flip", "BYTES", [1], images(DARK, prefix=lambda e: len(e) + 1)), bad),
        call("BYTES prefix of 2^32 - 1",
             infer_request("flip", "BYTES", [1], images(DARK, prefix=lambda e: 2**32 - 1)), bad),
        call("BYTES prefix cut to 2 bytes", infer_request("flip", "BYTES", [1], b"\x10\x00"), bad),
        call("BYTES: 2 elements, shape [1]",
             infer_request("flip", "BYTES", [1], images(DARK, DARK)), bad),
        call("empty batch", infer_request("flip", "FP32", [0, 3, SIZE, SIZE], b""), bad),
        call("NaN input", infer_request("flip", "FP32", [1, 3, SIZE, SIZE],
                                        np.full_like(GOOD, np.nan).tobytes()), bad),
        call("unknown model", infer_request("no-such-model", "FP32", [1, 3, SIZE, SIZE],
                                            GOOD.tobytes()), {Code.NOT_FOUND}),
    ]
    # fmt: on


@dataclass(frozen=True)
class Outcome:
    call: Call
    request_id: str  # sent as x-request-id: the server's access log line names it
    code: Code
    seconds: float


async def run_call(stub: pb_grpc.GRPCInferenceServiceStub, call: Call, request_id: str) -> Outcome:
    started = time.monotonic()
    metadata = (("x-request-id", request_id),)
    pending = stub.ModelInfer(call.request, timeout=call.deadline_s, metadata=metadata)
    if call.cancel_after_s is not None:
        await asyncio.sleep(call.cancel_after_s)
        pending.cancel()  # a no-op when the call has already ended
    code = await pending.code()
    return Outcome(call, request_id, code, time.monotonic() - started)


async def grpc_chaos(address: str, kinds: list[Call]) -> list[Outcome]:
    """``GRPC_USERS`` users taking the next of ``kinds`` in turn (so every kind runs once in
    every ``len(kinds)`` calls), until ``CHAOS_S`` or ``MAX_CALLS`` calls in all."""
    outcomes: list[Outcome] = []
    started, issued = time.monotonic(), 0
    options = [("grpc.max_send_message_length", -1)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        async def user() -> None:
            nonlocal issued
            while issued < MAX_CALLS and time.monotonic() - started < CHAOS_S:
                issued += 1
                call, request_id = kinds[issued % len(kinds)], f"{CHAOS_ID}{issued}"
                outcomes.append(await run_call(stub, call, request_id))

        await asyncio.gather(*(user() for _ in range(GRPC_USERS)))
    return outcomes


@dataclass(frozen=True)
class GrpcServer:
    server: Server
    address: str


@pytest.fixture(scope="module")
def chaos_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    root = tmp_path_factory.mktemp("chaos-grpc")
    repo = faults_repository(root / "repo", slow_rounds=SLOW_ROUNDS)
    port = free_port()
    env = {"ATTNSERVE_API_KEY": API_KEY, "ATTNSERVE_NUM_THREADS": "1",
           "ATTNSERVE_GRPC_PORT": str(port), "ATTNSERVE_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
           "ATTNSERVE_MEMORY_BUDGET_MB": str(MEMORY_BUDGET_MB),
           "ATTNSERVE_TIMEOUT_MS": str(SERVER_TIMEOUT_MS)}  # fmt: skip
    with running_server(repo, root, env) as server:
        yield GrpcServer(server, f"127.0.0.1:{port}")


def settled(server: Server, timeout_s: float = 30.0) -> dict[str, float]:
    """The engine's gauges once all are 0 (abandoned decodes finish in their threads), or as
    they are after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        gauges = {
            "queue depth": server.metric("attnserve_queue_depth"),
            "decode backlog": server.metric("attnserve_decode_backlog"),
            "memory reserved": server.metric("attnserve_memory_reserved_bytes"),
        }
        if not any(gauges.values()) or time.monotonic() > deadline:
            return gauges
        time.sleep(0.2)


def check_counted_once(outcomes: list[Outcome], log: str) -> int:
    """Every call the service handled is in its access log once, with the status its client
    got; those it never saw are only calls that ended (cancelled, deadline) before its handler
    started, and the message over the limit. Returns how many it handled."""
    handled: dict[str, list[str]] = {}
    for request_id, status in ACCESS_LINE.findall(log):
        handled.setdefault(request_id, []).append(status)
    twice = {i: s for i, s in handled.items() if len(s) > 1}
    assert not twice, twice
    wrong, unseen = [], []
    for o in outcomes:
        status = handled.get(o.request_id, [None])[0]
        if status is None:
            unseen.append((o.call.name, o.code.name))
            early = o.code in (Code.CANCELLED, Code.DEADLINE_EXCEEDED) and o.call.reaches_service
            if not (early or (not o.call.reaches_service and o.code == Code.RESOURCE_EXHAUSTED)):
                wrong.append((o.call.name, o.code.name, "never handled"))
        elif not o.call.reaches_service:
            wrong.append((o.call.name, o.code.name, f"handled as {status}"))
        elif o.call.cancel_after_s is not None or o.call.deadline_s < CALL_TIMEOUT_S:
            if status not in RACING:
                wrong.append((o.call.name, o.code.name, status))
        elif status != COUNTED_AS.get(o.code):
            wrong.append((o.call.name, o.code.name, status))
    assert not wrong, wrong[:10]
    assert len(handled) == len(outcomes) - len(unseen)
    return len(handled)


def count(server: Server, status: str) -> float:
    return server.metric("attnserve_requests_total", endpoint="grpc_infer", status=status)


def test_grpc_deadlines_passing_during_compute_are_counted_as_504(chaos_server: GrpcServer) -> None:
    """Regression: gRPC cancels the handler itself when a call's deadline passes during its
    batch's compute (nothing in the engine watches the deadline then); such calls were counted
    as clients gone (499), where every other passed deadline is a 504. Each call runs alone on
    the idle model (a batch of "slow" takes about 0.5 s), so its deadline passes mid-compute."""
    server, calls = chaos_server.server, 5
    before = {status: count(server, status) for status in ("499", "504")}
    request = infer_request("slow", "FP32", [1, 3, SIZE, SIZE], GOOD.tobytes())
    with grpc.insecure_channel(chaos_server.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(calls):
            with pytest.raises(grpc.RpcError) as raised:
                stub.ModelInfer(request, timeout=0.2)
            assert raised.value.code() == Code.DEADLINE_EXCEEDED
            time.sleep(0.6)  # until its batch is done
    give_up = time.monotonic() + 10
    while count(server, "499") + count(server, "504") < sum(before.values()) + calls:
        assert time.monotonic() < give_up, "a call was never counted"
        time.sleep(0.1)
    counted = {status: count(server, status) - before[status] for status in before}
    assert counted == {"499": 0, "504": calls}, counted


def http_count(server: Server) -> float:
    return sum(
        server.metric("attnserve_requests_total", endpoint=e) for e in ("predict", "v2_infer")
    )


def normal_call_is_correct(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = infer_request("flip", "BYTES", [1], images(DARK))
        response = stub.ModelInfer(request, timeout=CALL_TIMEOUT_S)
    logits = np.frombuffer(response.raw_output_contents[0], dtype=np.float32)
    assert list(response.outputs[0].shape) == [1, 2] and logits.argmax() == 0, logits  # "dark"


def test_grpc_chaos_beside_http_traffic(chaos_server: GrpcServer, summary: Summary) -> None:
    server, kinds = chaos_server.server, calls()
    before = server.metric("attnserve_requests_total", endpoint="grpc_infer")
    http_before = http_count(server)

    async def scenario() -> tuple[list[Outcome], list]:
        pool = Pool(server.url)
        chaos = asyncio.create_task(grpc_chaos(chaos_server.address, kinds))
        try:
            http = await traffic_during(pool, mixed("flip"), HTTP_USERS, chaos, after_s=0.0)
        finally:
            await pool.close()
        return chaos.result(), http

    outcomes, http = asyncio.run(scenario())
    assert {o.call.name for o in outcomes} == {k.name for k in kinds}, "a kind never ran"
    wrong = [(o.call.name, o.code) for o in outcomes if o.code not in o.call.allowed]
    assert not wrong, wrong[:10]
    hung = [(o.call.name, round(o.seconds, 2)) for o in outcomes
            if o.seconds > o.call.deadline_s + 1]  # fmt: skip
    assert not hung, hung[:10]
    assert all(r.failure is None and r.status == 200 for _, _, r in http), [
        (r.status, r.failure, r.body[:200]) for _, _, r in http if r.status != 200
    ][:5]

    gauges = settled(server)
    assert gauges == {"queue depth": 0, "decode backlog": 0, "memory reserved": 0}, gauges
    handled = check_counted_once(outcomes, server.log())
    counted = server.metric("attnserve_requests_total", endpoint="grpc_infer") - before
    assert counted == handled, (counted, handled)
    assert count(server, "500") == 0
    assert http_count(server) - http_before == len(http)
    normal_call_is_correct(chaos_server.address)
    assert "Traceback" not in server.log(), server.log()[-3000:]

    codes = Counter(o.code.name for o in outcomes)
    slowest = max(outcomes, key=lambda o: o.seconds)
    summary.report("chaos over gRPC beside HTTP", [
        ("gRPC calls", f"{len(outcomes)}, {handled} handled and counted once"),
        ("never handled (over the limit, ended early)", len(outcomes) - handled),
        ("gRPC statuses", ", ".join(f"{n} x {c}" for c, n in sorted(codes.items()))),
        ("HTTP requests (all 200)", len(http)),
        ("slowest gRPC call", f"{slowest.seconds:.2f} s ({slowest.call.name})"),
        ("slowest HTTP request", f"{max(r.seconds for _, _, r in http):.2f} s"),
    ])  # fmt: skip
