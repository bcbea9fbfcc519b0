"""Priority levels in the batcher's queue (Triton's ``priority_levels``, level 1 the highest):
higher levels are taken first, FIFO within a level, and deadlines, disconnects, depth and the
drain work per level as they do in one FIFO."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.engine.batcher import DynamicBatcher
from service.engine.result import Result
from service.errors import DeadlineExceeded, Unavailable
from tests.service.engine.batching import (
    BLOCKER,
    FakeRuntime,
    RecordingObserver,
    hold_worker,
    image,
    make_batcher,
    run,
    soon,
    wait_until,
)


async def submit_at(
    batcher: DynamicBatcher, items: list[tuple[float, int]], deadline_s: float = 4.0
) -> list[asyncio.Task[Result]]:
    """Queue (id, priority) items in this order, and wait until all of them are queued."""
    depth = batcher.queue_depth
    tasks = [
        asyncio.create_task(batcher.submit(image(i), soon(deadline_s), priority=p))
        for i, p in items
    ]
    await wait_until(lambda: batcher.queue_depth == depth + len(items))
    return tasks


def runs_after_blocker(fake: FakeRuntime) -> list[list[float]]:
    return [run.ids for run in fake.runs if run.ids != [BLOCKER]]


def test_higher_levels_are_taken_first_and_each_level_in_order() -> None:
    async def scenario() -> None:
        fake = FakeRuntime()
        batcher = make_batcher(fake, max_batch_size=2, priority_levels=3)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        items = [(1, 3), (2, 2), (3, 1), (4, 3), (5, 1), (6, 2)]
        tasks = await submit_at(batcher, items)
        fake.gate.set()
        await asyncio.gather(blocker, *tasks)
        assert runs_after_blocker(fake) == [[3, 5], [2, 6], [1, 4]]
        await batcher.stop(1.0)

    run(scenario())


@pytest.mark.parametrize("levels", [2, 1], ids=["two-levels", "one-level-fifo"])
def test_a_flood_at_the_lowest_level_delays_a_high_one_by_the_running_batch(levels: int) -> None:
    """Four batches' worth of low-priority items wait behind a running batch; a high-priority
    item queued after them runs in the very next batch. With one level (priorities ignored)
    the same request waits for the whole flood: the check can fail."""

    async def scenario() -> list[list[float]]:
        fake = FakeRuntime()
        batcher = make_batcher(fake, max_batch_size=2, priority_levels=levels)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        flood = await submit_at(batcher, [(i, levels) for i in range(1, 9)])
        (urgent,) = await submit_at(batcher, [(99, 1)])
        fake.gate.set()
        await asyncio.gather(blocker, urgent, *flood)
        await batcher.stop(1.0)
        return runs_after_blocker(fake)

    runs = run(scenario())
    if levels == 2:
        assert runs[0] == [99, 1] and runs[1:] == [[2, 3], [4, 5], [6, 7], [8]]
    else:
        assert runs[-1] == [99] and [i for r in runs[:-1] for i in r] == list(range(1, 9))


def test_deadlines_expire_items_at_every_level() -> None:
    async def scenario() -> None:
        fake, observer = FakeRuntime(), RecordingObserver()
        batcher = make_batcher(fake, observer=observer, priority_levels=2)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        (late_high,) = await submit_at(batcher, [(1, 1)], deadline_s=0.1)
        (late_low,) = await submit_at(batcher, [(2, 2)], deadline_s=0.1)
        kept = await submit_at(batcher, [(3, 2), (4, 1)])
        for late in (late_high, late_low):
            with pytest.raises(DeadlineExceeded):
                await late
        assert batcher.queue_depth == 2 and observer.expirations == 2
        fake.gate.set()
        await asyncio.gather(blocker, *kept)
        assert runs_after_blocker(fake) == [[4, 3]]
        await batcher.stop(1.0)

    run(scenario())


def test_depth_counts_every_level_and_a_cancelled_item_leaves_its_own() -> None:
    async def scenario() -> None:
        fake, observer = FakeRuntime(), RecordingObserver()
        batcher = make_batcher(fake, observer=observer, max_queue_size=3, priority_levels=2)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        first, second, third = await submit_at(batcher, [(1, 2), (2, 1), (3, 2)])
        with pytest.raises(Unavailable):  # max_queue_size counts all levels together
            await batcher.submit(image(4), soon(), priority=1)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        assert batcher.queue_depth == 2 and observer.drops == 1
        fake.gate.set()
        await asyncio.gather(blocker, second, third)
        assert runs_after_blocker(fake) == [[2, 3]] and observer.depths[-1] == 0
        await batcher.stop(1.0)

    run(scenario())


def test_a_timed_out_drain_answers_every_level() -> None:
    async def scenario() -> None:
        fake = FakeRuntime()
        batcher = make_batcher(fake, priority_levels=3)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        tasks = await submit_at(batcher, [(1, 3), (2, 1), (3, 2)])
        try:
            started = time.monotonic()
            await batcher.stop(drain_timeout_s=0.2)
            assert time.monotonic() - started < 1.0
            results = await asyncio.gather(blocker, *tasks, return_exceptions=True)
            assert all(isinstance(result, Unavailable) for result in results)
            assert batcher.queue_depth == 0
        finally:
            fake.gate.set()

    run(scenario())


def test_a_level_beyond_the_queue_goes_to_its_lowest() -> None:
    """A version reloaded with fewer levels still takes what was admitted for the old one."""

    async def scenario() -> None:
        fake = FakeRuntime()
        batcher = make_batcher(fake, priority_levels=2)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        tasks = await submit_at(batcher, [(1, 5), (2, 2), (3, 1)])
        fake.gate.set()
        await asyncio.gather(blocker, *tasks)
        assert runs_after_blocker(fake) == [[3, 1, 2]]
        await batcher.stop(1.0)

    run(scenario())
