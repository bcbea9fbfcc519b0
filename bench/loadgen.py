"""The benchmark's bounded load loops over the one load client (:mod:`bench.client`).

Every run stops at a time limit *and* a request-count limit, and only ever connects to
127.0.0.1.

* closed loop: ``concurrency`` workers, each sending its next request when the last returns;
* open loop: arrivals at a fixed rate whatever the server does; latency is measured from the
  scheduled arrival (no coordinated omission), and a cap on outstanding requests bounds memory.

Only requests that complete inside the measurement window (after a warm-up) are counted.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.client import Connection, build_request
from bench.machine import cpu_seconds
from bench.stats import percentile

REQUEST_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 60.0
MAX_OUTSTANDING = 512

Probe = Callable[[], Awaitable[Any]]
#: the server's own account, read from a successful answer's body, of its time in the engine
EngineMs = Callable[[bytes], float]


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        return build_request(self.method, self.path, self.body, dict(self.headers))

    def connect(self, port: int) -> Connection:
        return Connection(port)


class LoadRequest(Protocol):
    """What the loops send: HTTP here, gRPC in :mod:`bench.grpc_client`."""

    def encode(self) -> bytes: ...

    def connect(self, port: int) -> Any: ...


@dataclass
class RunResult:
    label: str
    window_s: float
    latencies_s: list[float] = field(default_factory=list)  # successful, in the window
    engine_ms: list[float] = field(default_factory=list)  # the same answers', when read
    errors: Counter[str] = field(default_factory=Counter)  # in the window, by status / kind
    sent: int = 0  # all requests started, warm-up included
    client_cpu_s: float = 0.0  # this process, over the window
    probes: tuple[Any, Any] = (None, None)  # the probe's values at window start and end
    offered_rate: float | None = None  # open loop only

    @property
    def ok(self) -> int:
        return len(self.latencies_s)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        return self.ok / self.window_s if self.window_s > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        return percentile(self.latencies_s, q) * 1000

    def engine_latency_ms(self, q: float) -> float:
        return percentile(self.engine_ms, q) if self.engine_ms else math.nan

    @property
    def mean_latency_ms(self) -> float:
        return sum(self.latencies_s) / len(self.latencies_s) * 1000 if self.latencies_s else 0.0


class _Window:
    """The measurement window: CPU and probe samples at its edges, and what falls inside."""

    def __init__(
        self, result: RunResult, warmup_s: float, probe: Probe | None, engine: EngineMs | None
    ) -> None:
        self.result = result
        self.engine = engine
        self.start = time.perf_counter() + warmup_s
        self.end = self.start + result.window_s
        self.probe = probe

    def inside(self, moment: float) -> bool:
        return self.start <= moment <= self.end

    def record(self, started: float, finished: float, outcome: int | str, body: bytes) -> None:
        if not self.inside(finished):
            return
        if outcome == 200:
            self.result.latencies_s.append(finished - started)
            if self.engine is not None:
                self.result.engine_ms.append(self.engine(body))
        else:
            self.result.errors[str(outcome)] += 1

    async def watch(self) -> None:
        """Sample at the window's edges (runs beside the load)."""
        await asyncio.sleep(max(0.0, self.start - time.perf_counter()))
        cpu, first = cpu_seconds(), await self._probe()
        await asyncio.sleep(max(0.0, self.end - time.perf_counter()))
        self.result.client_cpu_s = cpu_seconds() - cpu
        self.result.probes = (first, await self._probe())

    async def _probe(self) -> Any:
        return await self.probe() if self.probe is not None else None


async def _send(connection: Any, raw: bytes) -> tuple[int | str, bytes]:
    """The status and body, or the error's name and no body."""
    try:
        return await asyncio.wait_for(connection.exchange(raw), REQUEST_TIMEOUT_S)
    except (
        OSError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        ValueError,
        TimeoutError,
    ) as error:
        connection.close()
        return type(error).__name__, b""


async def closed_loop(
    port: int,
    request: LoadRequest,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    max_requests: int,
    probe: Probe | None = None,
    engine: EngineMs | None = None,
) -> RunResult:
    """``engine``, if given, reads each successful answer's engine time into ``engine_ms``."""
    result = RunResult(f"closed c={concurrency}", duration_s)
    window = _Window(result, warmup_s, probe, engine)
    raw = request.encode()

    async def worker() -> None:
        connection = request.connect(port)
        try:
            while time.perf_counter() < window.end and result.sent < max_requests:
                result.sent += 1
                started = time.perf_counter()
                outcome, body = await _send(connection, raw)
                window.record(started, time.perf_counter(), outcome, body)
        finally:
            connection.close()

    watcher = asyncio.create_task(window.watch())
    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(concurrency))),
        warmup_s + duration_s + DRAIN_TIMEOUT_S,
    )
    if result.sent >= max_requests:  # the count limit ended the run: shorten the window to match
        result.window_s = max(1e-3, min(window.end, time.perf_counter()) - window.start)
        watcher.cancel()
        return result
    await watcher
    return result


async def open_loop(
    port: int,
    request: LoadRequest,
    rate: float,
    duration_s: float,
    warmup_s: float,
    max_requests: int,
    probe: Probe | None = None,
) -> RunResult:
    result = RunResult(f"open {rate:g}/s", duration_s, offered_rate=rate)
    window = _Window(result, warmup_s, probe, None)
    raw = request.encode()
    idle: list[Any] = []
    outstanding = 0

    async def one(due: float) -> None:
        nonlocal outstanding
        connection = idle.pop() if idle else request.connect(port)
        outcome, _ = await _send(connection, raw)
        outstanding -= 1
        if window.inside(due):  # counted by arrival time: the offered load of the window
            if outcome == 200:
                result.latencies_s.append(time.perf_counter() - due)
            else:
                result.errors[str(outcome)] += 1
        if connection.is_open:
            idle.append(connection)

    watcher = asyncio.create_task(window.watch())
    first = time.perf_counter()
    count = min(max_requests, int(rate * (warmup_s + duration_s)))
    tasks = []
    for index in range(count):
        due = first + index / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        if outstanding >= MAX_OUTSTANDING:
            if window.inside(due):
                result.errors["client_overflow"] += 1
            continue
        outstanding += 1
        result.sent += 1
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.wait_for(asyncio.gather(*tasks), DRAIN_TIMEOUT_S)
    await watcher
    for connection in idle:
        connection.close()
    return result
