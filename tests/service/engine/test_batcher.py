"""DynamicBatcher: batch assembly (idle dispatch, the wait for reserved images still being
decoded), failure isolation, the shared worker slot, and resilience to observer and assembly
errors. The fakes are tests/service/engine/batching.py's."""

from __future__ import annotations

import asyncio
import time

import pytest
import torch

from service.engine.batcher import DynamicBatcher
from service.engine.result import Result
from service.engine.slots import WorkerSlots
from service.errors import DeadlineExceeded, InferenceFailed, Unavailable
from tests.service.engine.batching import (
    BLOCKER,
    FakeRuntime,
    RecordingObserver,
    expected_output,
    hold_worker,
    image,
    make_batcher,
    run,
    soon,
    submit_all,
)
from tests.service.engine.test_runtime import SIZE, tiny_runtime


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


def test_batchers_sharing_a_worker_slot_never_compute_at_once() -> None:
    async def scenario(shared: bool) -> FakeRuntime:
        fake = FakeRuntime(workers=2, hold_s=0.02)  # two threads: only the slot serialises
        slot = WorkerSlots(1)
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


class FlakySlots(WorkerSlots):
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


def test_a_backlog_is_shared_over_the_idle_instances() -> None:
    """Eight images at once before two idle instances: four each, not eight for the first."""

    async def scenario() -> list[int]:
        fake = FakeRuntime(workers=2, hold_s=0.02)
        batcher = make_batcher(fake, max_batch_size=16, worker_slots=WorkerSlots(2))
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(image(i), soon()) for i in range(1, 9)))
        for i, result in enumerate(results, start=1):
            torch.testing.assert_close(result.output, expected_output(i))
        await batcher.stop(1.0)
        return sorted(fake.sizes())

    assert run(scenario()) == [4, 4]
