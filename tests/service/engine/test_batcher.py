"""DynamicBatcher and its queue: bounded queue, deadlines, disconnects, batch assembly, failure
isolation.

Most tests use FakeRuntime, whose worker can be held busy on a gate so that requests queue up
behind it deterministically; each item is a constant image whose value is its id, so the fake
records exactly which items every forward pass ran.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import torch
from torch import Tensor

from service.engine.batcher import DynamicBatcher
from service.engine.result import Result
from service.errors import ClientDisconnected, DeadlineExceeded, InferenceFailed, Unavailable
from tests.service.engine.test_runtime import SIZE, tiny_runtime

TEST_TIMEOUT_S = 5.0
GATE_TIMEOUT_S = 5.0
BLOCKER = 0.5  # the id of the item that keeps the worker busy
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Every test's event loop, bounded in time so a stalled batcher fails instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, TEST_TIMEOUT_S))


def image(item_id: float) -> Tensor:
    return torch.full((3, 4, 4), float(item_id))


def expected_output(item_id: float) -> Tensor:
    return torch.tensor([48.0, 96.0]) * item_id  # sum over 3*4*4 values, times (1, 2)


def soon(seconds: float = 2.0) -> float:
    return time.monotonic() + seconds


@dataclass
class Run:
    ids: list[float]
    with_maps: bool
    at: float  # time.monotonic() when the forward pass started


class FakeRuntime:
    """Stands in for ModelRuntime: records every run_batch; clear ``gate`` to hold the worker
    busy; a negative item raises ValueError; batches over ``oom_above`` raise out of memory."""

    name, version = "fake", 1

    def __init__(self, workers: int = 1, oom_above: int | None = None, hold_s: float = 0.0):
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fake")
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.oom_above = oom_above
        self.hold_s = hold_s
        self.runs: list[Run] = []
        self.active = self.max_active = 0
        self._lock = threading.Lock()

    def run_batch(self, batch: Tensor, with_maps: bool) -> tuple[Tensor, dict[str, Tensor]]:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.runs.append(Run(batch[:, 0, 0, 0].tolist(), with_maps, time.monotonic()))
        try:
            self.entered.set()
            assert self.gate.wait(GATE_TIMEOUT_S), "the test never opened the gate"
            time.sleep(self.hold_s)
            if self.oom_above is not None and batch.shape[0] > self.oom_above:
                raise torch.cuda.OutOfMemoryError("fake: CUDA out of memory")
            if (batch[:, 0, 0, 0] < 0).any():
                raise ValueError("negative input")
            logits = batch.flatten(1).sum(dim=1, keepdim=True) * torch.tensor([1.0, 2.0])
            return logits, ({"attn": batch[:, 0] * 3} if with_maps else {})
        finally:
            with self._lock:
                self.active -= 1

    def computed(self) -> list[float]:
        """Ids of every item that went through a forward pass (successful or not)."""
        return [item_id for run in self.runs for item_id in run.ids]

    def sizes(self) -> list[int]:
        return [len(run.ids) for run in self.runs]


@dataclass
class RecordingObserver:
    depths: list[int] = field(default_factory=list)
    queue_waits: list[float] = field(default_factory=list)
    batches: list[tuple[int, float]] = field(default_factory=list)
    expirations: int = 0
    drops: int = 0

    def queue_depth(self, depth: int) -> None:
        self.depths.append(depth)

    def dequeued(self, queue_s: float) -> None:
        self.queue_waits.append(queue_s)

    def batch(self, size: int, inference_s: float) -> None:
        self.batches.append((size, inference_s))

    def expired(self) -> None:
        self.expirations += 1

    def dropped(self) -> None:
        self.drops += 1


def make_batcher(runtime: Any, **options: Any) -> DynamicBatcher:
    defaults: dict[str, Any] = dict(
        with_maps=False, max_batch_size=8, max_queue_delay_ms=5.0, max_queue_size=64
    )
    return DynamicBatcher(runtime, **{**defaults, **options})


async def wait_until(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def hold_worker(fake: FakeRuntime, batcher: DynamicBatcher) -> asyncio.Task[Result]:
    """Submit the blocker item and return once the worker is busy computing it."""
    fake.gate.clear()
    fake.entered.clear()
    task = asyncio.create_task(batcher.submit(image(BLOCKER), soon(4)))
    await wait_until(fake.entered.is_set)
    return task


async def submit_all(batcher: DynamicBatcher, ids: list[float]) -> list[asyncio.Task[Result]]:
    tasks = [asyncio.create_task(batcher.submit(image(i), soon(4))) for i in ids]
    await wait_until(lambda: batcher.queue_depth == len(ids))
    return tasks


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


def test_batches_never_exceed_max_and_grow_while_the_worker_is_busy() -> None:
    async def scenario() -> None:
        fake, observer = FakeRuntime(), RecordingObserver()
        batcher = make_batcher(fake, with_maps=True, max_batch_size=4, observer=observer)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        ids = list(range(1, 11))
        tasks = await submit_all(batcher, ids)
        fake.gate.set()
        results = await asyncio.gather(blocker, *tasks)
        assert max(fake.sizes()) == 4 and all(size <= 4 for size in fake.sizes())
        assert sorted(fake.computed()) == sorted([BLOCKER, *ids])  # each exactly once
        for item_id, result in zip(ids, results[1:], strict=True):
            torch.testing.assert_close(result.output, expected_output(item_id))
            torch.testing.assert_close(result.maps["attn"], torch.full((4, 4), 3.0 * item_id))
            run_of_item = next(run for run in fake.runs if item_id in run.ids)
            assert result.batch_size == len(run_of_item.ids)
            assert result.queue_ms >= 0 and result.inference_ms >= 0
        assert sorted(size for size, _ in observer.batches) == sorted(fake.sizes())
        assert len(observer.queue_waits) == len(ids) + 1
        await batcher.stop(1.0)

    run(scenario())


def test_lone_request_runs_at_once_when_the_worker_is_idle() -> None:
    async def scenario() -> None:
        fake = FakeRuntime()
        batcher = make_batcher(fake, max_queue_delay_ms=500)
        await batcher.start()
        submitted = time.monotonic()
        result = await batcher.submit(image(1), soon())
        assert fake.runs[0].at - submitted < 0.25 and result.queue_ms < 250
        assert result.batch_size == 1
        await batcher.stop(1.0)

    run(scenario())


async def decode_then_submit(batcher: DynamicBatcher, item_id: float, decode_s: float) -> Result:
    """What the pipeline does per image: reserve, decode, then submit."""
    with batcher.reserve() as reservation:
        await asyncio.sleep(decode_s)
        return await reservation.submit(image(item_id), soon())


def test_a_free_worker_waits_for_a_request_still_being_decoded() -> None:
    async def scenario() -> None:
        fake = FakeRuntime()
        batcher = make_batcher(fake, max_queue_delay_ms=1000)
        await batcher.start()
        decoding = asyncio.create_task(decode_then_submit(batcher, 2, 0.1))
        await asyncio.sleep(0)  # the decode has begun
        submitted = time.monotonic()
        first = await batcher.submit(image(1), soon())
        assert first.batch_size == 2 and (await decoding).batch_size == 2
        assert fake.sizes() == [2]
        assert 0.09 <= fake.runs[0].at - submitted < 0.6  # waited for the decode, not the delay
        await batcher.stop(1.0)

    run(scenario())


def test_the_wait_for_a_decoding_request_is_bounded_by_the_delay() -> None:
    async def scenario() -> None:
        fake = FakeRuntime()
        batcher = make_batcher(fake, max_queue_delay_ms=300)
        await batcher.start()
        decoding = asyncio.create_task(decode_then_submit(batcher, 2, 1.5))
        await asyncio.sleep(0)
        submitted = time.monotonic()
        first = await batcher.submit(image(1), soon())
        assert first.batch_size == 1 and 0.29 <= fake.runs[0].at - submitted < 0.9
        assert (await decoding).batch_size == 1 and fake.sizes() == [1, 1]
        await batcher.stop(1.0)

    run(scenario())


def test_a_full_batch_never_waits_for_images_still_being_decoded() -> None:
    async def scenario() -> None:
        fake = FakeRuntime()
        batcher = make_batcher(fake, max_batch_size=4, max_queue_delay_ms=3000)
        await batcher.start()
        with batcher.reserve():  # an image being decoded all the while
            started = time.monotonic()
            results = await asyncio.gather(*(batcher.submit(image(i), soon()) for i in range(1, 5)))
            assert time.monotonic() - started < 0.5
        assert fake.sizes() == [4] and {r.batch_size for r in results} == {4}
        await batcher.stop(1.0)

    run(scenario())


def test_an_abandoned_reservation_is_not_waited_for() -> None:
    async def scenario() -> None:
        fake = FakeRuntime()
        batcher = make_batcher(fake, max_queue_delay_ms=3000)
        await batcher.start()
        with pytest.raises(ValueError), batcher.reserve():
            raise ValueError("the image did not decode")
        started = time.monotonic()
        assert (await batcher.submit(image(1), soon())).batch_size == 1
        assert time.monotonic() - started < 0.5
        await batcher.stop(1.0)

    run(scenario())


def test_a_reservation_is_refused_when_the_queue_is_full() -> None:
    async def scenario() -> None:
        fake = FakeRuntime()
        batcher = make_batcher(fake, max_queue_size=2)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        queued = await submit_all(batcher, [1, 2])
        with pytest.raises(Unavailable, match="full"), batcher.reserve():
            pass
        fake.gate.set()
        await asyncio.gather(blocker, *queued)
        await batcher.stop(1.0)

    run(scenario())


def test_a_failing_item_fails_alone() -> None:
    async def scenario() -> None:
        fake = FakeRuntime()
        batcher = make_batcher(fake)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        ids = [1, -2, 3, 4]
        tasks = await submit_all(batcher, ids)
        fake.gate.set()
        results = await asyncio.gather(blocker, *tasks, return_exceptions=True)
        failed = results[2]
        assert isinstance(failed, InferenceFailed) and failed.status == 500
        assert "model raised ValueError: negative input" in failed.message
        for item_id, result in zip(ids, results[1:], strict=True):
            if item_id > 0:
                assert isinstance(result, Result) and result.batch_size == 1
                torch.testing.assert_close(result.output, expected_output(item_id))
        assert fake.sizes() == [1, 4, 1, 1, 1, 1]  # blocker, the failed batch, each alone
        await batcher.stop(1.0)

    run(scenario())


def test_out_of_memory_halves_the_batch() -> None:
    async def scenario() -> None:
        fake, observer = FakeRuntime(oom_above=2), RecordingObserver()
        batcher = make_batcher(fake, observer=observer)
        await batcher.start()
        blocker = await hold_worker(fake, batcher)
        ids = list(range(1, 9))
        tasks = await submit_all(batcher, ids)
        fake.gate.set()
        results = await asyncio.gather(blocker, *tasks)
        for item_id, result in zip(ids, results[1:], strict=True):
            assert result.batch_size <= 2
            torch.testing.assert_close(result.output, expected_output(item_id))
        assert fake.sizes() == [1, 8, 4, 2, 2, 4, 2, 2]  # halves, never single items
        assert [size for size, _ in observer.batches] == [1, 2, 2, 2, 2]
        await batcher.stop(1.0)

    run(scenario())


def test_out_of_memory_on_a_single_item_fails_that_item() -> None:
    async def scenario() -> None:
        batcher = make_batcher(FakeRuntime(oom_above=0))
        await batcher.start()
        with pytest.raises(InferenceFailed, match="out of memory"):
            await batcher.submit(image(1), soon())
        await batcher.stop(1.0)

    run(scenario())


def test_batched_results_equal_results_alone_with_a_real_model() -> None:
    runtime = tiny_runtime()
    inputs = torch.randn(16, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))

    async def scenario() -> list[Result]:
        batcher = make_batcher(runtime, with_maps=True, max_batch_size=16)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(x, soon()) for x in inputs))
        await batcher.stop(1.0)
        return list(results)

    try:
        results = run(scenario())
        assert max(result.batch_size for result in results) > 1
        for x, result in zip(inputs, results, strict=True):
            alone, alone_maps = runtime.run_batch(x.unsqueeze(0), with_maps=True)
            torch.testing.assert_close(result.output, alone[0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(
                result.maps["spatial"], alone_maps["spatial"][0], atol=1e-5, rtol=1e-4
            )
    finally:
        runtime.close()


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


def test_batchers_sharing_a_worker_slot_never_compute_at_once() -> None:
    async def scenario(shared: bool) -> FakeRuntime:
        fake = FakeRuntime(workers=2, hold_s=0.02)  # two threads: only the slot serialises
        slot = asyncio.Semaphore(1)
        batchers = [
            make_batcher(
                fake, with_maps=maps, max_batch_size=4, worker_slots=slot if shared else None
            )
            for maps in (False, True)
        ]
        for batcher in batchers:
            await batcher.start()
        results = await asyncio.gather(
            *(batchers[i % 2].submit(image(i + 1), soon()) for i in range(24))
        )
        for i, result in enumerate(results):
            assert ("attn" in result.maps) == (i % 2 == 1)
        for batcher in batchers:
            await batcher.stop(1.0)
        return fake

    fake = run(scenario(shared=True))
    assert fake.max_active == 1
    assert {run.with_maps for run in fake.runs} == {False, True}
    # The detector works: with a slot each, the two batchers do overlap.
    assert run(scenario(shared=False)).max_active == 2


class FailingObserver:
    """Every hook raises, as a broken metrics backend might."""

    def queue_depth(self, depth: int) -> None:
        raise RuntimeError("metrics backend down")

    def dequeued(self, queue_s: float) -> None:
        raise RuntimeError("metrics backend down")

    def batch(self, size: int, inference_s: float) -> None:
        raise RuntimeError("metrics backend down")

    def expired(self) -> None:
        raise RuntimeError("metrics backend down")

    def dropped(self) -> None:
        raise RuntimeError("metrics backend down")


def test_observer_failures_never_fail_requests() -> None:
    async def scenario() -> None:
        batcher = make_batcher(FakeRuntime(), observer=FailingObserver())
        await batcher.start()
        result = await batcher.submit(image(2), soon())
        torch.testing.assert_close(result.output, expected_output(2))
        with pytest.raises(DeadlineExceeded):
            await batcher.submit(image(3), time.monotonic() - 1)
        await batcher.stop(1.0)

    run(scenario())


class FlakySlots(asyncio.Semaphore):
    """A worker slot whose first acquire fails: an unexpected error inside batch assembly."""

    def __init__(self) -> None:
        super().__init__(1)
        self.failures = 0

    async def acquire(self) -> bool:
        if not self.failures:
            self.failures += 1
            raise RuntimeError("injected assembly failure")
        return await super().acquire()


def test_assembly_survives_an_unexpected_error() -> None:
    async def scenario() -> None:
        slots = FlakySlots()
        batcher = make_batcher(FakeRuntime(), worker_slots=slots)
        await batcher.start()
        result = await asyncio.wait_for(batcher.submit(image(5), soon()), 1.0)
        torch.testing.assert_close(result.output, expected_output(5))
        assert slots.failures == 1
        await batcher.stop(1.0)

    run(scenario())
