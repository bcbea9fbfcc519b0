"""The batch policy: admission to a bounded queue per (model version, maps or not) and batch
assembly in front of one runtime's worker thread (the items and their deadlines are
:mod:`service.engine.queue`'s).

Throughput comes from running many images per forward pass; latency from not waiting for them.
The batcher reconciles the two the way Triton's dynamic batcher does: a lone request runs at
once when the worker is idle, and while one batch computes the next assembles in the queue, so
load itself raises the batch size. An image enters once, through :meth:`DynamicBatcher.reserve`,
before it is decoded: when the worker frees up while reserved images are still being decoded,
it waits for them (at most ``max_queue_delay_ms``) instead of leaving them to wait out a whole
extra batch. Only the forward pass leaves the event loop (for the runtime's executor); item
state only changes on the loop, so it needs no locks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import replace
from typing import Protocol

import torch

from service.engine.queue import BatchObserver, DeadlineQueue, Disconnected, Item, NullObserver
from service.engine.result import Result
from service.engine.runtime import BatchRunner, run_items
from service.engine.sizing import BatchSizer
from service.engine.slots import WorkerSlots
from service.engine.statistics import Execution, VersionStatistics
from service.errors import InferenceFailed, ServiceError, Unavailable

log = logging.getLogger(__name__)

ASSEMBLY_ERROR_PAUSE_S = 0.01  # after an unexpected error, so a persistent one cannot spin


class BatchRuntime(BatchRunner, Protocol):
    """What the batcher needs of a :class:`service.engine.runtime.ModelRuntime` (and what fakes
    give)."""

    executor: Executor


class DynamicBatcher:
    def __init__(
        self,
        runtime: BatchRuntime,
        *,
        with_maps: bool,
        max_batch_size: int,
        max_queue_delay_ms: float,
        max_queue_size: int,
        observer: BatchObserver | None = None,
        worker_slots: WorkerSlots | None = None,
        target_latency_ms: float | None = None,
        statistics: VersionStatistics | None = None,
        priority_levels: int = 1,
    ) -> None:
        if max_batch_size < 1 or max_queue_size < 1 or max_queue_delay_ms < 0:
            raise ValueError("max_batch_size and max_queue_size must be >= 1, the delay >= 0")
        self.runtime = runtime
        self.with_maps = with_maps
        self.max_queue_delay_s = max_queue_delay_ms / 1000
        self.max_queue_size = max_queue_size
        # the batch-size cap: max_batch_size, or what target_latency_ms allows (sizing.py)
        self.sizer = BatchSizer(max_batch_size, target_latency_ms, max_queue_delay_ms)
        self.observer: BatchObserver = observer or NullObserver()
        self.statistics = statistics  # its version's forward passes (Triton's statistics)
        # One batch per instance of the runtime in compute at a time, across its with- and
        # without-maps batchers (both share the slots).
        self.worker_slots = worker_slots or WorkerSlots(1)
        name = f"{getattr(runtime, 'name', 'model')} v{getattr(runtime, 'version', '?')}"
        self._name = f"{name} with maps" if with_maps else name
        self._queue = DeadlineQueue(self._name, self.observer, priority_levels)
        self._incoming = 0  # reserved images that are still being decoded
        self._wakeup = asyncio.Event()  # set on every submit, decode end, stop, assembly timer
        self._assembler: asyncio.Task[None] | None = None
        self._computing: set[asyncio.Task[None]] = set()
        self._accepting = False
        self._stopping = False

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        self._accepting = True
        self._assembler = asyncio.get_running_loop().create_task(
            self._assemble(), name=f"attnserve batcher {self._name}"
        )

    @contextmanager
    def reserve(self) -> Iterator[Reservation]:
        """Admit one image before it is decoded (raises Unavailable: queue full, not started,
        stopping), so that a free worker knows it is coming and waits for it rather than run a
        partial batch; the image then enters the queue with :meth:`Reservation.submit`."""
        self._refuse_if_closed()
        reservation = Reservation(self._enqueue)
        self._incoming += 1
        try:
            yield reservation
        finally:
            self._arrived(reservation)

    async def submit(
        self,
        tensor: torch.Tensor,
        deadline: float,
        is_disconnected: Disconnected | None = None,
        priority: int = 1,
    ) -> Result:
        """Reserve and submit at once: an image that needs no decoding."""
        with self.reserve() as reservation:
            return await reservation.submit(tensor, deadline, is_disconnected, priority)

    def _refuse_if_closed(self) -> None:
        if not self._accepting:
            raise Unavailable(f"{self._name} is not accepting requests (stopped or not started)")
        if len(self._queue) >= self.max_queue_size:
            raise Unavailable(
                f"the queue for {self._name} is full ({self.max_queue_size} requests waiting); "
                "retry after the Retry-After delay"
            )

    def _arrived(self, reservation: Reservation) -> None:
        """The reserved image is queued or abandoned: no longer worth waiting for."""
        if reservation.pending:
            reservation.pending = False
            self._incoming -= 1
            self._wakeup.set()

    async def _enqueue(
        self,
        reservation: Reservation,
        tensor: torch.Tensor,
        deadline: float,
        is_disconnected: Disconnected | None,
        priority: int,
    ) -> Result:
        self._arrived(reservation)
        self._refuse_if_closed()  # again: the queue may have filled during the decode
        item = self._queue.put(tensor, deadline, priority)
        self._wakeup.set()
        return await self._queue.wait_for(item, is_disconnected)

    async def stop(self, drain_timeout_s: float) -> None:
        """Stop accepting, answer everything already admitted (within ``drain_timeout_s``; after
        it, whatever is still unanswered gets Unavailable), then end the assembly task."""
        self._accepting = False
        self._stopping = True
        self._wakeup.set()
        try:
            await asyncio.wait_for(self._drained(), drain_timeout_s)
        except asyncio.TimeoutError:
            log.warning("batcher %s: drain timed out after %.1f s", self._name, drain_timeout_s)
        finally:
            self._queue.shut_out(Unavailable(f"{self._name} is shutting down"))
            for task in [self._assembler, *self._computing]:
                if task is not None:
                    task.cancel()  # answers its items with Unavailable (see _settle)

    async def _drained(self) -> None:
        if self._assembler is not None:
            await asyncio.wait((self._assembler,))  # it ends once stopping and the queue is empty
        while self._computing:
            await asyncio.wait(set(self._computing))

    # --- assembly: runs as one task on the loop -------------------------------------------

    async def _assemble(self) -> None:
        """Forever: wait until an item waits, take the worker slot (items keep accumulating
        meanwhile), take up to max_batch_size live items, hand them to a compute task. Logs and
        survives its own errors, so one failure never stalls the queue."""
        while True:
            try:
                if not await self._wait_for_dispatch():
                    return  # stopping and drained
                await self.worker_slots.acquire()  # the next batch accumulates meanwhile
                try:
                    await self._wait_for_incoming()
                    batch = self._queue.take(self._batch_size())
                except BaseException:
                    self.worker_slots.release()
                    raise
                if not batch:
                    self.worker_slots.release()  # all expired or dropped while it waited
                    continue
                task = asyncio.get_running_loop().create_task(self._compute(batch))
                self._computing.add(task)
                # Callbacks, not a ``finally``: they run even if the task is cancelled unstarted.
                task.add_done_callback(lambda done, batch=batch: self._settle(done, batch))
            except Exception:  # not CancelledError: that ends the task
                log.exception("batcher %s: assembly error; continuing", self._name)
                await asyncio.sleep(ASSEMBLY_ERROR_PAUSE_S)

    async def _wait_for_dispatch(self) -> bool:
        """True as soon as an item waits (a batch is taken once a worker slot is free): a lone
        request never waits out the delay. False when stopping with nothing left."""
        while True:
            self._wakeup.clear()  # before checking: a submit after the check sets it again
            if self._queue:
                return True
            if self._stopping:
                return False
            await self._wakeup.wait()

    async def _wait_for_incoming(self) -> None:
        """The worker is free and the batch not full, but requests bound here are still being
        decoded: wait for them, at most max_queue_delay_ms. Under closed-loop load a request
        that misses its batch by a few milliseconds of decoding otherwise waits a whole batch
        more (the batch it missed, then its own), which is what sets p99. With nothing being
        decoded there is nothing to wait for, so a lone request still runs at once."""
        until = time.monotonic() + self.max_queue_delay_s
        while True:
            self._wakeup.clear()  # before checking: a submit or a decode end sets it again
            timeout = until - time.monotonic()
            if self._stopping or not self._incoming or timeout <= 0:
                return
            if len(self._queue) >= self._batch_size():
                return
            await self._sleep_until_woken(timeout)

    def _batch_size(self) -> int:
        """With this batcher's slot taken: its share of the backlog (the images queued and
        those still being decoded) beside the instances that are idle too."""
        slots = self.worker_slots
        backlog = len(self._queue) + self._incoming
        return self.sizer.batch_size(backlog, slots.size, 1 + slots.idle)

    async def _sleep_until_woken(self, timeout: float) -> None:
        handle = asyncio.get_running_loop().call_later(timeout, self._wakeup.set)
        try:
            await self._wakeup.wait()
        finally:
            handle.cancel()

    # --- compute: the forward pass in the runtime's thread, answers on the loop ------------

    async def _compute(self, batch: list[Item]) -> None:
        """Run the batch in the runtime's thread, then answer its items here on the loop."""
        runs: list[Execution] = []

        def work() -> tuple[float, float, list[Result | ServiceError]]:
            started = time.monotonic()
            outputs = run_items(self.runtime, [item.tensor for item in batch], self.with_maps, runs)
            return started, time.monotonic() - started, outputs

        loop = asyncio.get_running_loop()
        started, elapsed, outputs = await loop.run_in_executor(self.runtime.executor, work)
        for item, out in zip(batch, outputs, strict=True):
            self._queue.notify(self.observer.dequeued, started - item.submitted)
            if item.future.done():
                continue
            if isinstance(out, ServiceError):
                item.future.set_exception(out)
                continue
            queue_ms = (started - item.submitted) * 1000
            item.future.set_result(replace(out, queue_ms=queue_ms, inference_ms=elapsed * 1000))
        for run in runs:
            self._queue.notify(self.observer.batch, run.size, run.seconds)
            self.sizer.observe(run.size, run.seconds)
            if self.statistics is not None:
                self.statistics.executed(run)
        if self.sizer.fit is not None:
            self._queue.notify(self.observer.sizing, *self.sizer.fit, self.sizer.cap())

    def _settle(self, task: asyncio.Task[None], batch: list[Item]) -> None:
        """Free the worker slot and make sure every item of the batch got an answer."""
        self._computing.discard(task)
        self.worker_slots.release()
        if task.cancelled():
            error: ServiceError = Unavailable(f"{self._name} is shutting down")
        elif task.exception() is not None:
            log.error("batcher %s: batch failed", self._name, exc_info=task.exception())
            error = InferenceFailed(f"the batch could not run: {task.exception()}")
        else:
            return
        for item in batch:
            if not item.future.done():
                item.future.set_exception(error)


class Reservation:
    """One admitted image between :meth:`DynamicBatcher.reserve` and its entry into the queue."""

    def __init__(self, enqueue: Callable[..., Awaitable[Result]]) -> None:
        self._enqueue = enqueue
        self.pending = True  # counted among the batcher's incoming images

    async def submit(
        self,
        tensor: torch.Tensor,
        deadline: float,
        is_disconnected: Disconnected | None = None,
        priority: int = 1,
    ) -> Result:
        """Queue the pre-processed image (3, H, W) at level ``priority`` (1 the highest) and
        wait for its result.

        Raises Unavailable (queue full, stopping), DeadlineExceeded (its ``time.monotonic()``
        deadline passed while queued), ClientDisconnected (``is_disconnected`` said so while
        queued) or InferenceFailed (the model raised on it)."""
        return await self._enqueue(self, tensor, deadline, is_disconnected, priority)
