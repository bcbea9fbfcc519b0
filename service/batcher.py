"""The dynamic batcher: a bounded queue per (model version, maps or not), deadlines, and batch
assembly in front of one runtime's worker thread.

Throughput comes from running many images per forward pass; latency from not waiting for them.
The batcher reconciles the two the way Triton's dynamic batcher does: a lone request runs at
once when the worker is idle, and while one batch computes the next assembles in the queue, so
load itself raises the batch size. When the worker frees up while requests bound for this
batcher are still being decoded, it waits for them (at most ``max_queue_delay_ms``) instead of
leaving them to wait out a whole extra batch. Only the forward pass leaves the event loop (for the
runtime's executor); item state only changes on the loop, so it needs no locks.

A client that goes away while its item is queued gets :class:`ClientDisconnected` (499, as
nginx logs it): nobody can be answered any more, but the HTTP layer can still count it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import torch

from service.errors import (
    ClientDisconnected,
    DeadlineExceeded,
    InferenceFailed,
    ServiceError,
    Unavailable,
)
from service.runtime import BatchRunner, ItemOutput, run_items

log = logging.getLogger(__name__)

DISCONNECT_POLL_S = 0.05
ASSEMBLY_ERROR_PAUSE_S = 0.01  # after an unexpected error, so a persistent one cannot spin


@dataclass
class ItemResult:
    output: torch.Tensor  # this item's logits, no batch dim, CPU
    maps: dict[str, torch.Tensor]  # this item's maps, no batch dim
    batch_size: int  # size of the batch it ran in
    queue_ms: float  # from submit to the start of its batch's compute
    inference_ms: float  # its batch's compute time (stack + forward + split)


class BatchObserver(Protocol):
    """Metrics hooks, always called on the event loop; the app passes a Prometheus one."""

    def queue_depth(self, depth: int) -> None: ...
    def dequeued(self, queue_s: float) -> None: ...  # per item that starts compute
    def batch(self, size: int, inference_s: float) -> None: ...  # per forward pass that succeeds
    def expired(self) -> None: ...  # per item whose deadline passed while queued
    def dropped(self) -> None: ...  # per item whose client went away while queued


class NullObserver:
    def queue_depth(self, depth: int) -> None: ...
    def dequeued(self, queue_s: float) -> None: ...
    def batch(self, size: int, inference_s: float) -> None: ...
    def expired(self) -> None: ...
    def dropped(self) -> None: ...


class BatchRuntime(BatchRunner, Protocol):
    """What the batcher needs of a :class:`service.runtime.ModelRuntime` (and what fakes give)."""

    executor: Executor


# An item leaves QUEUED exactly once, always on the loop; whoever moves it answers and counts
# it, so an item is never computed after it was answered, nor counted twice.
QUEUED, COMPUTING, EXPIRED, DROPPED, SHUT_OUT = "queued", "computing", "expired", "dropped", "out"


@dataclass(eq=False)  # identity equality: ``deque.remove`` must never compare tensors
class _Item:
    tensor: torch.Tensor
    deadline: float
    future: asyncio.Future[ItemResult]
    submitted: float = field(default_factory=time.monotonic)
    state: str = QUEUED


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
        worker_slots: asyncio.Semaphore | None = None,
        idle_dispatch: bool = True,
    ) -> None:
        if max_batch_size < 1 or max_queue_size < 1 or max_queue_delay_ms < 0:
            raise ValueError("max_batch_size and max_queue_size must be >= 1, the delay >= 0")
        self.runtime = runtime
        self.with_maps = with_maps
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_ms / 1000
        self.max_queue_size = max_queue_size
        self.observer: BatchObserver = observer or NullObserver()
        # One batch per runtime in compute at a time, across its with- and without-maps batchers.
        self.worker_slots = worker_slots or asyncio.Semaphore(1)
        self.idle_dispatch = idle_dispatch
        name = f"{getattr(runtime, 'name', 'model')} v{getattr(runtime, 'version', '?')}"
        self._name = f"{name} with maps" if with_maps else name
        self._queue: deque[_Item] = deque()
        self._incoming = 0  # requests bound here that are still being decoded
        self._wakeup = asyncio.Event()  # set on every submit, decode end, stop, assembly timer
        self._assembler: asyncio.Task[None] | None = None
        self._computing: set[asyncio.Task[None]] = set()
        self._accepting = False
        self._stopping = False

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @contextmanager
    def incoming(self) -> Iterator[None]:
        """Wrap the decoding of a request that will be submitted here (on the loop), so that a
        free worker knows more is coming and waits for it rather than run a partial batch."""
        self._incoming += 1
        try:
            yield
        finally:
            self._incoming -= 1
            self._wakeup.set()

    async def start(self) -> None:
        self._accepting = True
        self._assembler = asyncio.get_running_loop().create_task(
            self._assemble(), name=f"attnserve batcher {self._name}"
        )

    async def submit(
        self,
        tensor: torch.Tensor,
        deadline: float,
        is_disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> ItemResult:
        """Queue one pre-processed image (3, H, W) and wait for its result.

        Raises Unavailable (queue full, not started, stopping), DeadlineExceeded (its
        ``time.monotonic()`` deadline passed while queued), ClientDisconnected
        (``is_disconnected`` said so while queued) or InferenceFailed (the model raised on it).
        """
        if not self._accepting:
            raise Unavailable(f"{self._name} is not accepting requests (stopped or not started)")
        if len(self._queue) >= self.max_queue_size:
            raise Unavailable(
                f"the queue for {self._name} is full ({self.max_queue_size} requests waiting); "
                "retry after the Retry-After delay"
            )
        if deadline <= time.monotonic():
            self._notify(self.observer.expired)
            raise DeadlineExceeded("the request's deadline passed before it was queued")
        item = _Item(tensor, deadline, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._notify(self.observer.queue_depth, len(self._queue))
        self._wakeup.set()
        try:
            return await self._wait_for(item, is_disconnected)
        except BaseException:
            # Cancelled (or is_disconnected raised): nobody is waiting for this item any more.
            if item.state == QUEUED:
                self._unqueue(item)
                self._drop(item)
            item.future.cancel()
            raise

    async def _wait_for(
        self, item: _Item, is_disconnected: Callable[[], Awaitable[bool]] | None
    ) -> ItemResult:
        """Wait until answered; while queued, expire it at its deadline and poll the client."""
        while not item.future.done():
            timeout = None  # once computing, the answer is worth waiting for
            if item.state == QUEUED:
                timeout = item.deadline - time.monotonic()
                if timeout <= 0:
                    self._unqueue(item)
                    self._expire(item)
                    break
                if is_disconnected is not None:
                    timeout = min(timeout, DISCONNECT_POLL_S)
            await asyncio.wait((item.future,), timeout=timeout)
            polled = item.state == QUEUED and is_disconnected and await is_disconnected()
            if polled and item.state == QUEUED:  # it may have been dispatched during the poll
                self._unqueue(item)
                self._drop(item)
                raise ClientDisconnected("the client disconnected before its request ran")
        return item.future.result()

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
            gone = Unavailable(f"{self._name} is shutting down")
            while self._queue:
                item = self._queue.popleft()
                item.state = SHUT_OUT
                if not item.future.done():
                    item.future.set_exception(gone)
            for task in [self._assembler, *self._computing]:
                if task is not None:
                    task.cancel()  # answers its items with Unavailable (see _settle)
            self._notify(self.observer.queue_depth, 0)

    async def _drained(self) -> None:
        if self._assembler is not None:
            await asyncio.wait((self._assembler,))  # it ends once stopping and the queue is empty
        while self._computing:
            await asyncio.wait(set(self._computing))

    # --- assembly: runs as one task on the loop -------------------------------------------

    async def _assemble(self) -> None:
        """Forever: wait until a batch is due, take the worker slot (items keep accumulating
        meanwhile), take up to max_batch_size live items, hand them to a compute task. Logs and
        survives its own errors, so one failure never stalls the queue."""
        while True:
            try:
                if not await self._wait_for_dispatch():
                    return  # stopping and drained
                await self.worker_slots.acquire()  # the next batch accumulates meanwhile
                try:
                    await self._wait_for_incoming()
                    batch = self._take_batch()
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

    async def _sleep_until_woken(self, timeout: float | None = None) -> None:
        handle = None
        if timeout is not None:
            handle = asyncio.get_running_loop().call_later(timeout, self._wakeup.set)
        try:
            await self._wakeup.wait()
        finally:
            if handle is not None:
                handle.cancel()

    async def _wait_for_dispatch(self) -> bool:
        """True when a batch should be taken (once a worker slot is free): with idle dispatch as
        soon as an item waits; without, once a full batch waits or the oldest item has waited
        max_queue_delay_ms (at once when stopping). False when stopping with nothing left."""
        while True:
            self._wakeup.clear()  # before checking: a submit after the check sets it again
            timeout = None
            if self._queue:
                if self.idle_dispatch or self._stopping or len(self._queue) >= self.max_batch_size:
                    return True
                timeout = self._queue[0].submitted + self.max_queue_delay_s - time.monotonic()
                if timeout <= 0:
                    return True
            elif self._stopping:
                return False
            await self._sleep_until_woken(timeout)

    async def _wait_for_incoming(self) -> None:
        """The worker is free and the batch not full, but requests bound here are still being
        decoded: wait for them, at most max_queue_delay_ms. Under closed-loop load a request
        that misses its batch by a few milliseconds of decoding otherwise waits a whole batch
        more (the batch it missed, then its own), which is what sets p99. With nothing being
        decoded there is nothing to wait for, so a lone request still runs at once."""
        if not self.idle_dispatch:
            return  # the batch already waited out the delay or filled up
        until = time.monotonic() + self.max_queue_delay_s
        while True:
            self._wakeup.clear()  # before checking: a submit or a decode end sets it again
            timeout = until - time.monotonic()
            if self._stopping or not self._incoming or timeout <= 0:
                return
            if len(self._queue) >= self.max_batch_size:
                return
            await self._sleep_until_woken(timeout)

    def _take_batch(self) -> list[_Item]:
        """Up to max_batch_size items still worth computing, oldest first."""
        batch: list[_Item] = []
        now = time.monotonic()
        while self._queue and len(batch) < self.max_batch_size:
            item = self._queue.popleft()
            if item.future.done() or item.state != QUEUED:
                continue
            if item.deadline <= now:  # its own timer has not fired yet: still never computed
                self._expire(item)
                continue
            item.state = COMPUTING
            batch.append(item)
        self._notify(self.observer.queue_depth, len(self._queue))
        return batch

    # --- compute: the forward pass in the runtime's thread, answers on the loop ------------

    async def _compute(self, batch: list[_Item]) -> None:
        """Run the batch in the runtime's thread, then answer its items here on the loop."""
        runs: list[tuple[int, float]] = []

        def work() -> tuple[float, float, list[ItemOutput]]:
            started = time.monotonic()
            outputs = run_items(self.runtime, [item.tensor for item in batch], self.with_maps, runs)
            return started, time.monotonic() - started, outputs

        loop = asyncio.get_running_loop()
        started, elapsed, outputs = await loop.run_in_executor(self.runtime.executor, work)
        for item, out in zip(batch, outputs, strict=True):
            self._notify(self.observer.dequeued, started - item.submitted)
            if item.future.done():
                continue
            if out.error is not None:
                item.future.set_exception(out.error)
                continue
            queue_ms = (started - item.submitted) * 1000
            result = ItemResult(out.output, out.maps, out.batch_size, queue_ms, elapsed * 1000)
            item.future.set_result(result)
        for size, seconds in runs:
            self._notify(self.observer.batch, size, seconds)

    def _settle(self, task: asyncio.Task[None], batch: list[_Item]) -> None:
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

    # --- item transitions out of QUEUED (on the loop) -------------------------------------

    def _unqueue(self, item: _Item) -> None:
        self._queue.remove(item)  # O(queue size), bounded by max_queue_size
        self._notify(self.observer.queue_depth, len(self._queue))

    def _expire(self, item: _Item) -> None:
        item.state = EXPIRED
        self._notify(self.observer.expired)
        waited_ms = (time.monotonic() - item.submitted) * 1000
        item.future.set_exception(
            DeadlineExceeded(
                f"the request's deadline passed after {waited_ms:.0f} ms in the queue; it was "
                "not computed (the service is overloaded or the timeout too short)"
            )
        )

    def _drop(self, item: _Item) -> None:
        item.state = DROPPED
        self._notify(self.observer.dropped)
        item.future.cancel()

    def _notify(self, hook: Callable[..., None], *args: float) -> None:
        """A metrics failure is logged, never allowed to fail requests or stall the queue."""
        try:
            hook(*args)
        except Exception:
            log.exception("batcher %s: observer %s failed", self._name, hook.__name__)
