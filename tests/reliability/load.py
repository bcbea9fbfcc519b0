"""The reliability tests' bounded load loops over the one load client (:class:`bench.client.Pool`):
closed loop (N users, each sends its next request when the last is answered) and open loop (a
fixed arrival rate, whatever the answers), both stopped by count or time, keeping every reply
(status, headers, body) for the tests to check, where :mod:`bench.loadgen` keeps only the
latencies of its measurement window. Traffic goes to 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.client import Pool, Reply, build_request

RequestFactory = Callable[[int], bytes]  # request number -> raw request bytes


@dataclass
class Run:
    replies: list[Reply] = field(default_factory=list)
    seconds: float = 0.0

    def with_status(self, *statuses: int) -> list[Reply]:
        return [reply for reply in self.replies if reply.status in statuses]

    @property
    def failures(self) -> list[Reply]:
        return [reply for reply in self.replies if reply.failure is not None]


async def closed_loop(
    pool: Pool, make: RequestFactory, users: int, *, seconds: float = 1e9, count: int = 10**9
) -> Run:
    run, started, issued = Run(), time.monotonic(), 0

    async def user() -> None:
        nonlocal issued
        while issued < count and time.monotonic() - started < seconds:
            issued += 1
            run.replies.append(await pool.send(make(issued)))

    await asyncio.gather(*(user() for _ in range(users)))
    run.seconds = time.monotonic() - started
    return run


async def open_loop(pool: Pool, make: RequestFactory, rate: float, seconds: float) -> Run:
    """``rate`` requests a second for ``seconds``; returns once every one is answered (each is
    bounded by the pool's timeout, after which it counts as hung)."""
    run, started = Run(), time.monotonic()
    tasks: list[asyncio.Task[Reply]] = []
    for number in range(int(rate * seconds)):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(pool.send(make(number))))
    run.seconds = time.monotonic() - started
    run.replies = list(await asyncio.gather(*tasks))
    return run


async def scrape(pool: Pool, name: str, **labels: str) -> float:
    """The sum of one metric's samples whose labels include ``labels``."""
    reply = await pool.send(build_request("GET", "/metrics"))
    total = 0.0
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


async def send_all(pool: Pool, requests: list[bytes], concurrency: int) -> list[Reply]:
    """Every request, at most ``concurrency`` at a time; replies in the requests' order."""
    slots = asyncio.Semaphore(concurrency)

    async def one(raw: bytes) -> Reply:
        async with slots:
            return await pool.send(raw)

    return list(await asyncio.gather(*(one(raw) for raw in requests)))


#: (sent at, answered at, reply); both times in seconds relative to the end of the action.
Timed = tuple[float, float, Reply]


async def traffic_during(
    pool: Pool,
    make: RequestFactory,
    users: int,
    action: asyncio.Task[object],
    *,
    after_s: float = 0.5,
    count: int = 5_000,
) -> list[Timed]:
    """Closed-loop traffic from before ``action`` until ``after_s`` after it ends (at most
    ``count`` requests): every request with its send and answer times relative to the action's
    end, so a test can tell what was in flight during it from what came after."""
    log: list[tuple[float, float, Reply]] = []
    done_at: list[float] = []
    action.add_done_callback(lambda _: done_at.append(time.monotonic()))
    issued = 0

    async def user() -> None:
        nonlocal issued
        while issued < count and (not done_at or time.monotonic() < done_at[0] + after_s):
            issued += 1
            sent = time.monotonic()
            reply = await pool.send(make(issued))
            log.append((sent, time.monotonic(), reply))

    await asyncio.gather(*(user() for _ in range(users)))
    await asyncio.wait((action,))
    return [(sent - done_at[0], answered - done_at[0], reply) for sent, answered, reply in log]


async def manage(
    url: str, path: str, headers: dict[str, str], delay_s: float = 0.5
) -> httpx.Response:
    """A management call (``POST path``) ``delay_s`` after traffic started flowing."""
    await asyncio.sleep(delay_s)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        return await client.post(path)
