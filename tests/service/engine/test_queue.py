"""The batcher's queue: bounded, deadlines, disconnects, and the drain on stop."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.errors import ClientDisconnected, DeadlineExceeded, Unavailable
from tests.service.engine.batching import (
    FakeRuntime,
    RecordingObserver,
    expected_output,
    hold_worker,
    image,
    make_batcher,
    run,
    soon,
    submit_all,
    wait_until,
)


def test_full_queue_raises_unavailable_with_retry_after() -> None:
    async def scenario() -> None:
        fake, observer = FakeRuntime(), RecordingObserver()
        batcher = make_batcher(fake, max_queue_size=3, observer=observer)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        queued = await submit_all(batcher, [1, 2, 3])
        with pytest.raises(Unavailable) as raised:
            await batcher.submit(image(4), soon())
        assert raised.value.status == 503 and raised.value.headers["Retry-After"] == "1"
        assert "full" in raised.value.message and "3" in raised.value.message
        assert batcher.queue_depth == 3
        fake.gate.set()
        results = await asyncio.gather(blocker, *queued)
        assert [r.output.tolist() for r in results[1:]] == [
            expected_output(i).tolist() for i in (1, 2, 3)
        ]
        assert 4 not in fake.computed() and max(observer.depths) == 3
        await batcher.stop(1.0)

    run(scenario())


def test_queued_item_expires_at_its_deadline_and_is_never_computed() -> None:
    async def scenario() -> None:
        fake, observer = FakeRuntime(), RecordingObserver()
        batcher = make_batcher(fake, observer=observer)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as raised:
            await batcher.submit(image(7), started + 0.2)
        waited = time.monotonic() - started
        # Answered at its deadline, while the worker is still busy: not when it frees up.
        assert 0.19 <= waited < 1.0 and not fake.gate.is_set()
        assert raised.value.status == 504
        fake.gate.set()
        await blocker
        await batcher.submit(image(8), soon())
        assert 7 not in fake.computed() and 8 in fake.computed()
        assert observer.expirations == 1 and batcher.queue_depth == 0
        await batcher.stop(1.0)

    run(scenario())


def test_item_past_its_deadline_is_skipped_at_dispatch() -> None:
    """Its submitter is busy in a slow disconnect poll when the deadline passes and the worker
    frees up: the batcher itself must expire it rather than compute it."""

    async def scenario() -> None:
        fake, observer = FakeRuntime(), RecordingObserver()
        batcher = make_batcher(fake, observer=observer)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)

        async def slow_poll() -> bool:
            await asyncio.sleep(0.4)
            return False

        waiting = asyncio.create_task(batcher.submit(image(7), time.monotonic() + 0.15, slow_poll))
        await asyncio.sleep(0.25)  # past its deadline, its submitter still inside the poll
        fake.gate.set()
        await blocker
        with pytest.raises(DeadlineExceeded):
            await waiting
        assert 7 not in fake.computed() and observer.expirations == 1
        await batcher.stop(1.0)

    run(scenario())


def test_already_past_deadline_is_refused_and_counted() -> None:
    async def scenario() -> None:
        fake, observer = FakeRuntime(), RecordingObserver()
        batcher = make_batcher(fake, observer=observer)
        await batcher.start()
        with pytest.raises(DeadlineExceeded):
            await batcher.submit(image(1), time.monotonic() - 0.001)
        await batcher.stop(1.0)
        assert fake.computed() == [] and observer.expirations == 1

    run(scenario())


def test_disconnected_client_is_dropped_and_never_computed() -> None:
    async def scenario() -> None:
        fake, observer = FakeRuntime(), RecordingObserver()
        batcher = make_batcher(fake, observer=observer)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        gone = False

        async def is_disconnected() -> bool:
            return gone

        waiting = asyncio.create_task(batcher.submit(image(9), soon(), is_disconnected))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        gone = True
        with pytest.raises(ClientDisconnected):
            await asyncio.wait_for(waiting, 0.5)
        # A submitter cancelled by the server counts as gone too.
        cancelled = asyncio.create_task(batcher.submit(image(11), soon()))
        await wait_until(lambda: batcher.queue_depth == 1)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        assert batcher.queue_depth == 0
        fake.gate.set()
        await blocker
        await batcher.stop(1.0)
        assert 9 not in fake.computed() and 11 not in fake.computed()
        assert observer.drops == 2 and observer.expirations == 0

    run(scenario())


def test_stop_drains_everything_admitted_before_it() -> None:
    async def scenario() -> None:
        fake = FakeRuntime()
        batcher = make_batcher(fake, max_batch_size=2)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        tasks = await submit_all(batcher, [1, 2, 3, 4, 5])
        stopping = asyncio.create_task(batcher.stop(drain_timeout_s=3.0))
        await asyncio.sleep(0.05)
        with pytest.raises(Unavailable):
            await batcher.submit(image(6), soon())
        assert not stopping.done()
        fake.gate.set()
        results = await asyncio.gather(blocker, *tasks)
        await asyncio.wait_for(stopping, 1.0)
        assert [r.output.tolist() for r in results[1:]] == [
            expected_output(i).tolist() for i in (1, 2, 3, 4, 5)
        ]
        assert 6 not in fake.computed()

    run(scenario())


def test_stop_answers_unavailable_after_the_drain_timeout() -> None:
    async def scenario() -> None:
        fake = FakeRuntime()
        batcher = make_batcher(fake)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        tasks = await submit_all(batcher, [1, 2, 3])
        started = time.monotonic()
        try:
            await batcher.stop(drain_timeout_s=0.2)
            assert time.monotonic() - started < 1.0
            results = await asyncio.gather(blocker, *tasks, return_exceptions=True)
            assert all(isinstance(result, Unavailable) for result in results)
            assert batcher.queue_depth == 0
        finally:
            fake.gate.set()

    run(scenario())
