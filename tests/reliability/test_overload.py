"""Overload: about 4x the measured capacity for a bounded time. Every request is answered (200,
503 with Retry-After, or 504), none hangs or is reset, the queue stays within its bound, the
admitted requests finish within their deadline, memory stays bounded, and latency is back to
its unloaded level within 5 s of the spike.

The model is tests/service/fake_models ``Slow`` (a fixed cost per batch, one torch thread), so
capacity is set by compute and a 4x spike is within what one Python client can offer on two
cores (the demo classifier answers ~275 images/s here, 4x of which no Python client reaches).
``ATTNSERVE_RELIABILITY_SPIKE_S`` sets the spike's length (default 30 s, as in the issue).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.client import Pool, build_request
from bench.stats import percentile
from tests.reliability.conftest import Summary
from tests.reliability.load import Run, closed_loop, open_loop, scrape
from tests.reliability.process import footprint
from tests.service.fake_models import slow_repository
from tests.service.images import solid
from tests.service.server import Server, running_server

SPIKE_S = float(os.environ.get("ATTNSERVE_RELIABILITY_SPIKE_S", "30"))
OVERLOAD_FACTOR = 4
QUEUE_SIZE = 16
DEADLINE_MS = 2000
CAPACITY_S = 3.0
CAPACITY_USERS = 8
RECOVERY_WINDOW_S = 5.0
SCRAPE_EVERY_S = 0.1
RSS_GROWTH_BOUND_MB = 150
#: "Back to the unloaded level": within twice the unloaded median (or 20 ms more, whichever is
#: larger, so scheduling noise on a loaded 2-core machine does not count as overload).
RECOVERED_FACTOR, RECOVERED_SLACK_S = 2.0, 0.020
RECOVERED_STREAK = 3

REQUEST = build_request("POST", "/predict?model=slow", solid((20, 30, 40)),
                        {"Content-Type": "image/png"})  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = slow_repository(tmp_path_factory.mktemp("overload") / "repo", rounds=2)
    env = {
        "ATTNSERVE_NUM_THREADS": "1",  # the other core is the load generator's
        "ATTNSERVE_MAX_QUEUE_SIZE": str(QUEUE_SIZE),
        "ATTNSERVE_TIMEOUT_MS": str(DEADLINE_MS),
    }
    with running_server(repo, Path(repo).parent, env) as server:
        yield server


async def watch(server: Server, stop: asyncio.Event, depths: list[float], rss: list[float]) -> None:
    pool = Pool(server.url)
    while not stop.is_set():
        depths.append(await scrape(pool, "attnserve_queue_depth", model="slow"))
        rss.append(footprint(server.process.pid).rss_mb)
        await asyncio.sleep(SCRAPE_EVERY_S)
    await pool.close()


async def recovery(pool: Pool, unloaded_s: float) -> tuple[float, list[float]]:
    """Seconds from the spike's end until RECOVERED_STREAK requests in a row are back to the
    unloaded level (inf if not within the window), and every latency seen."""
    bound = max(RECOVERED_FACTOR * unloaded_s, unloaded_s + RECOVERED_SLACK_S)
    started, streak, latencies = time.monotonic(), 0, []
    while time.monotonic() - started < RECOVERY_WINDOW_S:
        reply = await pool.send(REQUEST)
        latencies.append(reply.seconds)
        streak = streak + 1 if reply.status == 200 and reply.seconds <= bound else 0
        if streak == RECOVERED_STREAK:
            return time.monotonic() - started, latencies
    return float("inf"), latencies


async def scenario(server: Server) -> dict:
    pool = Pool(server.url)
    unloaded = await closed_loop(pool, lambda _: REQUEST, users=1, count=20)
    unloaded_s = statistics.median(r.seconds for r in unloaded.replies)
    measured = await closed_loop(pool, lambda _: REQUEST, CAPACITY_USERS, seconds=CAPACITY_S)
    capacity = len(measured.with_status(200)) / measured.seconds
    rss_before = footprint(server.process.pid).rss_mb
    stop, depths, rss = asyncio.Event(), [], []
    watcher = asyncio.create_task(watch(server, stop, depths, rss))
    spike: Run = await open_loop(pool, lambda _: REQUEST, OVERLOAD_FACTOR * capacity, SPIKE_S)
    recovered_s, after = await recovery(pool, unloaded_s)
    stop.set()
    await watcher
    await pool.close()
    return dict(unloaded_s=unloaded_s, capacity=capacity, spike=spike, depths=depths, rss=rss,
                rss_before=rss_before, recovered_s=recovered_s, after=after)  # fmt: skip


def test_four_times_capacity(server: Server, summary: Summary) -> None:
    figures = asyncio.run(scenario(server))
    spike: Run = figures["spike"]
    ok, full, late = spike.with_status(200), spike.with_status(503), spike.with_status(504)
    others = [r for r in spike.replies if r.status not in (200, 503, 504)]
    p99 = percentile([r.seconds for r in ok], 0.99)
    server_p99 = percentile(
        [json.loads(r.body)["results"][0]["timings"]["total_ms"] for r in ok], 0.99
    )
    rss_peak = max(figures["rss"], default=figures["rss_before"])
    answered = len(spike.replies) - len(spike.failures)
    depth = max(figures["depths"], default=0)
    rows = [
        ("unloaded latency (median, ms)", f"{figures['unloaded_s'] * 1000:.1f}"),
        ("capacity (closed loop, req/s)", f"{figures['capacity']:.1f}"),
        ("offered (req/s, for s)", f"{len(spike.replies) / spike.seconds:.1f} for {SPIKE_S:.0f}"),
        ("requests sent / answered", f"{len(spike.replies)} / {answered}"),
        ("200 / 503 / 504 / other", f"{len(ok)} / {len(full)} / {len(late)} / {len(others)}"),
        ("hung / reset", f"{sum(r.failure == 'hung' for r in spike.failures)} / "
                         f"{sum(r.failure not in (None, 'hung') for r in spike.failures)}"),
        ("admitted p99 / deadline (ms)", f"{p99 * 1000:.0f} / {DEADLINE_MS}"),
        ("admitted p99 server-side until post-processing (ms)", f"{server_p99:.0f}"),
        ("max queue depth / max_queue_size", f"{depth:.0f} / {QUEUE_SIZE}"),
        ("RSS before -> peak (MB)", f"{figures['rss_before']:.0f} -> {rss_peak:.0f}"),
        ("back to unloaded latency after (s)", f"{figures['recovered_s']:.2f}"),
    ]  # fmt: skip
    summary.report("overload", rows)
    assert not spike.failures, spike.failures[:5]
    assert not others, [(r.status, r.body[:200]) for r in others[:5]]
    assert full, "no 503 at 4x capacity: the spike did not overload the queue"
    assert all(r.headers.get("retry-after") for r in full)
    assert max(figures["depths"]) <= QUEUE_SIZE
    assert ok and p99 < DEADLINE_MS / 1000
    assert rss_peak - figures["rss_before"] < RSS_GROWTH_BOUND_MB
    assert figures["recovered_s"] <= RECOVERY_WINDOW_S, figures["after"]
