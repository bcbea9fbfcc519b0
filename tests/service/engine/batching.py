"""What the engine's batcher tests share: FakeRuntime, whose worker can be held busy on a gate
so that requests queue up behind it deterministically (each item is a constant image whose
value is its id, so the fake records exactly which items every forward pass ran), a recording
observer, and bounded event loops."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import Tensor

from service.engine.batcher import DynamicBatcher
from service.engine.result import Result

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
    sizings: list[tuple[float, float, int]] = field(default_factory=list)
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

    def sizing(self, slope_s: float, intercept_s: float, cap: int) -> None:
        self.sizings.append((slope_s, intercept_s, cap))


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
