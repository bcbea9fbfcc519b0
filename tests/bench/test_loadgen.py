"""The load generator, the /proc CPU reader and the stage arithmetic, against a stub server."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable

import pytest

from bench.client import Connection
from bench.loadgen import HttpRequest, closed_loop, open_loop
from bench.machine import cpu_seconds
from bench.stages import Snapshot, parse, stages_between
from bench.stats import percentile

SLOW_DELAY_S = 0.05


async def stub_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """/ok: 200 with Content-Length; /chunked: 200 chunked; /close: 200 until EOF; /once: 200,
    then a silent close; /slow: 200 after SLOW_DELAY_S; anything else: 503."""
    try:
        while True:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            path = head.split(" ", 2)[1]
            length = next(
                (
                    int(line.split(":")[1])
                    for line in head.split("\r\n")
                    if line.lower().startswith("content-length")
                ),
                0,
            )
            await reader.readexactly(length)
            if path == "/chunked":
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                )
            elif path == "/once":  # answers, then drops the connection without saying so
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce")
                await writer.drain()
                writer.close()
                return
            elif path == "/close":
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye")
                await writer.drain()
                writer.close()
                return
            else:
                if path == "/slow":
                    await asyncio.sleep(SLOW_DELAY_S)
                status = b"200 OK" if path in ("/ok", "/slow") else b"503 Busy"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def with_stub(test: Callable[[int], Awaitable[object]]) -> object:
    async def main() -> object:
        server = await asyncio.start_server(stub_handler, "127.0.0.1", 0)
        try:
            return await test(server.sockets[0].getsockname()[1])
        finally:
            server.close()

    return asyncio.run(main())


def test_responses_are_read_whole_in_every_framing() -> None:
    async def exchange(port: int) -> list[tuple[int, bytes]]:
        connection = Connection(port)
        answers = [
            await connection.exchange(HttpRequest("GET", p).encode())
            for p in ("/chunked", "/ok", "/close", "/ok")
        ]
        connection.close()
        return answers

    assert with_stub(exchange) == [(200, b"hello world"), (200, b"ok"), (200, b"bye"), (200, b"ok")]


def test_a_connection_the_server_dropped_is_reopened_once() -> None:
    async def twice(port: int) -> list[tuple[int, bytes]]:
        connection = Connection(port)
        raw = HttpRequest("GET", "/once").encode()
        answers = [await connection.exchange(raw), await connection.exchange(raw)]
        connection.close()
        return answers

    assert with_stub(twice) == [(200, b"once"), (200, b"once")]


def test_closed_loop_counts_successes_and_errors_by_status() -> None:
    def run(path: str) -> object:
        request = HttpRequest("POST", path, b"x" * 1000)
        return with_stub(lambda port: closed_loop(port, request, 4, 0.3, 0.1, 100_000))

    good, bad = run("/ok"), run("/fail")
    assert good.ok > 0 and good.error_count == 0
    assert good.throughput == pytest.approx(good.ok / good.window_s)
    assert bad.ok == 0 and set(bad.errors) == {"503"} and bad.errors["503"] > 0


def test_a_closed_loop_reads_the_engine_time_of_every_counted_answer() -> None:
    """The stub answers "ok" to /ok: the reader sees that body, once per counted answer, and
    nothing for failures; without a reader nothing is recorded."""
    bodies: list[bytes] = []

    def engine_ms(body: bytes) -> float:
        bodies.append(body)
        return 7.0

    def run(path: str, engine: Callable[[bytes], float] | None) -> object:
        request = HttpRequest("POST", path, b"x")
        return with_stub(lambda port: closed_loop(port, request, 2, 0.3, 0.1, 100_000, None,
                                                  engine))  # fmt: skip

    good = run("/ok", engine_ms)
    assert good.ok > 0 and good.engine_ms == [7.0] * good.ok
    assert good.engine_latency_ms(0.99) == 7.0 and set(bodies) == {b"ok"}
    assert run("/fail", engine_ms).engine_ms == []
    unread = run("/ok", None)
    assert unread.engine_ms == [] and math.isnan(unread.engine_latency_ms(0.99))


def test_the_request_count_bounds_a_closed_loop() -> None:
    request = HttpRequest("GET", "/ok")
    result = with_stub(lambda port: closed_loop(port, request, 2, 30.0, 0.0, 7))
    assert result.sent == 7
    assert result.window_s < 30.0  # shortened to the time the 7 requests took


def test_open_loop_sends_the_offered_count_and_times_from_the_scheduled_arrival() -> None:
    request = HttpRequest("GET", "/slow")
    result = with_stub(lambda port: open_loop(port, request, 40.0, 0.5, 0.25, 10_000))
    assert result.sent == 30  # 40/s over 0.75 s
    assert result.error_count == 0 and result.ok > 0
    assert min(result.latencies_s) >= SLOW_DELAY_S


def test_cpu_seconds_reads_this_process_like_os_times() -> None:
    before = cpu_seconds()
    deadline = time.monotonic() + 5.0
    while cpu_seconds() - before < 0.05 and time.monotonic() < deadline:
        sum(range(10_000))
    times = os.times()
    assert cpu_seconds() > before
    assert cpu_seconds() == pytest.approx(times.user + times.system, abs=0.1)


METRICS = """\
# TYPE attnserve_preprocess_duration_seconds histogram
attnserve_preprocess_duration_seconds_sum{{model="m"}} {pre}
attnserve_preprocess_duration_seconds_count{{model="m"}} {n}
# TYPE attnserve_queue_duration_seconds histogram
attnserve_queue_duration_seconds_sum{{model="m"}} {queue}
attnserve_queue_duration_seconds_count{{model="m"}} {n}
# TYPE attnserve_inference_duration_seconds histogram
attnserve_inference_duration_seconds_sum{{model="m"}} {infer}
attnserve_inference_duration_seconds_count{{model="m"}} {batches}
# TYPE attnserve_batch_size histogram
attnserve_batch_size_sum{{model="m"}} {n}
attnserve_batch_size_count{{model="m"}} {batches}
# TYPE attnserve_request_duration_seconds histogram
attnserve_request_duration_seconds_sum{{model="m",endpoint="predict"}} {total}
attnserve_request_duration_seconds_count{{model="m",endpoint="predict"}} {n}
attnserve_request_duration_seconds_sum{{model="other",endpoint="predict"}} 99.0
attnserve_request_duration_seconds_count{{model="other",endpoint="predict"}} 1.0
"""


def test_stage_means_come_from_histogram_deltas_of_one_model() -> None:
    first = Snapshot(0.0, parse(METRICS.format(pre=1, n=10, queue=1, infer=1, batches=5, total=5)))
    # 8 more images in 2 batches: 2 ms decode, 5 ms queue, 40 ms per batch, 60 ms in the server
    last = Snapshot(
        1.0, parse(METRICS.format(pre=1.016, n=18, queue=1.04, infer=1.08, batches=7, total=5.48))
    )
    stages = stages_between(first, last, "m", "predict", client_mean_ms=70.0)
    assert stages.preprocess_ms == pytest.approx(2.0)
    assert stages.queue_ms == pytest.approx(5.0)
    assert stages.inference_batch_ms == pytest.approx(40.0)
    assert stages.batch_size == pytest.approx(4.0)
    assert stages.inference_image_ms == pytest.approx(10.0)
    assert stages.server_total_ms == pytest.approx(60.0)
    assert stages.server_other_ms == pytest.approx(13.0)
    assert stages.outside_ms == pytest.approx(10.0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
