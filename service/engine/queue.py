"""The queue in front of one batcher: items with their deadlines, futures and states.

An item leaves QUEUED exactly once, always on the event loop; whoever moves it answers and
counts it, so an item is never computed after it was answered, nor counted twice. A client that
goes away while its item is queued gets :class:`ClientDisconnected` (499, as nginx logs it):
nobody can be answered any more, but the HTTP layer can still count it.

Items wait in one FIFO per priority level (Triton's ``priority_levels``; level 1 is the
highest): :meth:`DeadlineQueue.take` empties the higher levels first, so a flood at a low level
delays a higher-priority item by at most the batch already computing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from service.engine.result import Result
from service.errors import ClientDisconnected, DeadlineExceeded, ServiceError

log = logging.getLogger(__name__)

DISCONNECT_POLL_S = 0.05
QUEUED, COMPUTING, EXPIRED, DROPPED, SHUT_OUT = "queued", "computing", "expired", "dropped", "out"

Disconnected = Callable[[], Awaitable[bool]]


class BatchObserver(Protocol):
    """Metrics hooks, always called on the event loop; the app passes a Prometheus one."""

    def queue_depth(self, depth: int) -> None: ...
    def dequeued(self, queue_s: float) -> None: ...  # per item that starts compute
    def batch(self, size: int, inference_s: float) -> None: ...  # per forward pass that succeeds
    def expired(self) -> None: ...  # per item whose deadline passed while queued
    def dropped(self) -> None: ...  # per item whose client went away while queued
    # the fitted t(n) = a * n + b and the batch-size cap (a model with target_latency_ms)
    def sizing(self, slope_s: float, intercept_s: float, cap: int) -> None: ...


class NullObserver:
    def queue_depth(self, depth: int) -> None: ...
    def dequeued(self, queue_s: float) -> None: ...
    def batch(self, size: int, inference_s: float) -> None: ...
    def expired(self) -> None: ...
    def dropped(self) -> None: ...
    def sizing(self, slope_s: float, intercept_s: float, cap: int) -> None: ...


@dataclass(eq=False)  # identity equality: ``deque.remove`` must never compare tensors
class Item:
    tensor: torch.Tensor
    deadline: float
    future: asyncio.Future[Result]
    priority: int = 1  # its level, 1 the highest
    submitted: float = field(default_factory=time.monotonic)
    state: str = QUEUED


class DeadlineQueue:
    def __init__(self, name: str, observer: BatchObserver, levels: int = 1) -> None:
        if levels < 1:
            raise ValueError("a queue has at least one priority level")
        self.name = name
        self.observer = observer
        self._levels: list[deque[Item]] = [deque() for _ in range(levels)]  # [0]: level 1
        self._count = 0  # items in all levels, so the depth is O(1)

    def __len__(self) -> int:
        return self._count

    def put(self, tensor: torch.Tensor, deadline: float, priority: int = 1) -> Item:
        """Queue at level ``priority`` (1 the highest). A level beyond this queue's goes to
        its lowest: a version reloaded with fewer levels still takes what was admitted."""
        if deadline <= time.monotonic():
            self.notify(self.observer.expired)
            raise DeadlineExceeded("the request's deadline passed before it was queued")
        level = min(max(priority, 1), len(self._levels))
        item = Item(tensor, deadline, asyncio.get_running_loop().create_future(), level)
        self._levels[level - 1].append(item)
        self._count += 1
        self.notify(self.observer.queue_depth, self._count)
        return item

    async def wait_for(self, item: Item, is_disconnected: Disconnected | None) -> Result:
        """Wait until answered; while queued, expire it at its deadline and poll the client."""
        try:
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
                if polled and item.state == QUEUED:  # it may have been dispatched meanwhile
                    self._unqueue(item)
                    self._drop(item)
                    raise ClientDisconnected("the client disconnected before its request ran")
            return item.future.result()
        except BaseException:
            # Cancelled (or is_disconnected raised): nobody is waiting for this item any more.
            if item.state == QUEUED:
                self._unqueue(item)
                self._drop(item)
            item.future.cancel()
            raise

    def take(self, count: int) -> list[Item]:
        """Up to ``count`` items still worth computing: the highest level first, oldest first
        within a level."""
        batch: list[Item] = []
        now = time.monotonic()
        for items in self._levels:
            while items and len(batch) < count:
                item = items.popleft()
                self._count -= 1
                if item.future.done() or item.state != QUEUED:
                    continue
                if item.deadline <= now:  # its own timer has not fired yet: never computed
                    self._expire(item)
                    continue
                item.state = COMPUTING
                batch.append(item)
        self.notify(self.observer.queue_depth, self._count)
        return batch

    def shut_out(self, error: ServiceError) -> None:
        """Answer everything still queued with ``error`` (the drain timed out)."""
        for items in self._levels:
            while items:
                item = items.popleft()
                item.state = SHUT_OUT
                if not item.future.done():
                    item.future.set_exception(error)
        self._count = 0
        self.notify(self.observer.queue_depth, 0)

    def notify(self, hook: Callable[..., None], *args: float) -> None:
        """A metrics failure is logged, never allowed to fail requests or stall the queue."""
        try:
            hook(*args)
        except Exception:
            log.exception("batcher %s: observer %s failed", self.name, hook.__name__)

    def _unqueue(self, item: Item) -> None:
        self._levels[item.priority - 1].remove(item)  # O(its level's size) <= max_queue_size
        self._count -= 1
        self.notify(self.observer.queue_depth, self._count)

    def _expire(self, item: Item) -> None:
        item.state = EXPIRED
        self.notify(self.observer.expired)
        waited_ms = (time.monotonic() - item.submitted) * 1000
        item.future.set_exception(
            DeadlineExceeded(
                f"the request's deadline passed after {waited_ms:.0f} ms in the queue; it was "
                "not computed (the service is overloaded or the timeout too short)"
            )
        )

    def _drop(self, item: Item) -> None:
        item.state = DROPPED
        self.notify(self.observer.dropped)
        item.future.cancel()
