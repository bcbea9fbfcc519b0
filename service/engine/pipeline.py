"""One image or tensor through the engine: admission, decode and pre-process (a thread pool),
queue, batch, compute (the model's worker thread). Every protocol calls this one object, so
/predict and v2 get the same admission, batching, deadlines and metrics.

Admission refuses before any work is spent: while draining, past the deadline, with the
model's queue already full, or with too many images already waiting to be decoded (the pool's
own queue is otherwise unbounded, and under overload decoding requests that will be refused
delays the admitted ones). The deadline also holds while an image decodes: its client gets
its 504 then, not when a slow decode ends. While the store is still loading, an unknown model
is 503, not 404.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field, replace

import torch
from prometheus_client import Gauge

from models.repository.config import InputSpec, ModelConfig
from service.engine.batcher import Reservation
from service.engine.memory import (
    CONVERSION_BYTES_PER_PIXEL,
    MemoryBudget,
    budget_bytes,
    image_bytes,
    mask_bytes,
    tensor_bytes,
)
from service.engine.queue import DISCONNECT_POLL_S, Disconnected
from service.engine.result import Result
from service.engine.statistics import VersionStatistics
from service.engine.store import LoadedVersion, ModelStore
from service.errors import (
    BadRequest,
    ClientDisconnected,
    DeadlineExceeded,
    InvalidParameter,
    NotFound,
    ServiceError,
    Unavailable,
)
from service.imaging import Probed, load_probed, probe
from service.malloc import MMAP_THRESHOLD, release_free_memory
from service.metrics import Metrics
from service.settings import Settings
from service.thread_names import DECODE, name_os_thread


@dataclass(frozen=True)
class Target:
    """The model version a request runs on, as the protocols see it."""

    name: str
    version: int
    config: ModelConfig
    versions: tuple[int, ...]  # every version of the model, ascending


@dataclass(frozen=True)
class Job:
    """What every image of one request shares on its way through the engine."""

    target: Target
    with_maps: bool
    deadline: float  # time.monotonic()
    is_disconnected: Disconnected | None = None
    started: float = field(default_factory=time.monotonic)  # the request's statistics start
    results: list[Result] = field(default_factory=list)  # its images' results as they come
    priority: int = 1  # the queue level, 1 the highest (resolved by Pipeline.job)


class DecodeBacklog:
    """How many images were handed to the decode pool and are not decoded yet, at most
    ``limit``: the pool's own queue is unbounded. Released from the pool's threads, hence the
    lock; ``gauge`` shows it (``attnserve_decode_backlog``)."""

    def __init__(self, limit: int, gauge: Gauge) -> None:
        self.limit = limit
        self.gauge = gauge
        self._count = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self._count >= self.limit:
                return False
            self._count += 1
        self.gauge.inc()
        return True

    def release(self, _: Future[object] | None = None) -> None:
        with self._lock:
            self._count -= 1
        self.gauge.dec()


def decode(probed: Probed, spec: InputSpec) -> tuple[torch.Tensor, tuple[int, int]]:
    """:func:`load_probed`, in a decode thread; after an image whose decoded frame passed
    glibc's mmap threshold, the free memory of its buffers goes back to the kernel, which the
    service's malloc settings would otherwise keep (:mod:`service.malloc`)."""
    try:
        return load_probed(probed, spec)
    finally:
        large = probed.pixels * CONVERSION_BYTES_PER_PIXEL >= MMAP_THRESHOLD
        if large and probed.pixels <= probed.max_pixels:
            release_free_memory()


class Pipeline:
    def __init__(self, store: ModelStore, settings: Settings, metrics: Metrics) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.draining = False
        self.preprocess_pool = ThreadPoolExecutor(
            settings.preprocess_workers,
            thread_name_prefix="attnserve-preprocess",
            initializer=name_os_thread,
            initargs=(DECODE,),
        )
        self._backlog = DecodeBacklog(settings.max_queue_size, metrics.decode_backlog)
        self.memory = MemoryBudget(
            budget_bytes(settings.memory_budget_mb), metrics.memory_reserved, metrics.memory_budget
        )

    def target(self, name: str | None, version: int | None) -> Target:
        """The named (default: the default model) version (default: the newest ready).
        Raises NotFound, or Unavailable while loading or when no version is ready."""
        entry, loaded = self.store.get(name, version)
        assert entry.config is not None  # a ready version implies a valid config
        return Target(entry.name, loaded.version, entry.config, tuple(sorted(entry.versions)))

    def job(
        self,
        target: Target,
        with_maps: bool,
        timeout_ms: float | None = None,
        is_disconnected: Disconnected | None = None,
        priority: int = 0,
    ) -> Job:
        """The request's deadline starts now; ``timeout_ms`` may only shorten the configured
        one. ``priority`` is Triton's: 0 for the model's default level, else 1 (the highest)
        to its ``priority_levels``."""
        limit = self.settings.timeout_ms
        if timeout_ms is not None and timeout_ms <= 0:
            raise InvalidParameter("timeout_ms must be positive")
        chosen = limit if timeout_ms is None else min(timeout_ms, limit)
        level = self._level(target, priority)
        deadline = time.monotonic() + chosen / 1000
        return Job(target, with_maps, deadline, is_disconnected, priority=level)

    def _level(self, target: Target, priority: int) -> int:
        batching = self.settings.batching_for(target.config)
        if priority == 0:
            return batching.default_level
        if not 1 <= priority <= batching.levels:
            raise BadRequest(
                f"priority {priority} is out of range: model {target.name!r} has "
                f"{batching.levels} priority level(s); send 1 (the highest) to "
                f"{batching.levels}, or 0 for its default level {batching.default_level}"
            )
        return priority

    def drain(self) -> None:
        """From now on every new image is refused (503); admitted ones are still answered."""
        self.draining = True

    async def run_image(self, job: Job, data: bytes) -> Result:
        """Decode, pre-process and run one encoded image, within the memory budget. Its header
        is read once, here: admission sizes the image from it and the decoder goes on from it."""
        probed = probe(data, max_pixels=self.settings.max_image_pixels)
        nbytes = image_bytes(job.target.config, job.with_maps, probed)
        async with self.memory.reserve(nbytes, job.deadline, job.is_disconnected):
            return await self._run_image(job, probed)

    async def _run_image(self, job: Job, probed: Probed) -> Result:
        with self._admit(job) as (loaded, reservation):
            started = time.perf_counter()
            tensor, size = await self._decode(job, probed)
            preprocess_s = time.perf_counter() - started
            self.metrics.preprocess_duration.labels(job.target.name).observe(preprocess_s)
            result = await self._submit(job, loaded, reservation, tensor)
        result = replace(result, preprocess_ms=preprocess_s * 1000, original_size=size)
        job.results.append(result)
        return result

    async def run_tensor(self, job: Job, tensor: torch.Tensor) -> Result:
        """Run one image that is already the model's input (3, H, W), within the budget."""
        nbytes = tensor_bytes(job.target.config, job.with_maps)
        async with self.memory.reserve(nbytes, job.deadline, job.is_disconnected):
            with self._admit(job) as (loaded, reservation):
                result = await self._submit(job, loaded, reservation, tensor)
        job.results.append(result)
        return result

    def encoding_mask(self, job: Job, result: Result) -> AbstractAsyncContextManager[None]:
        """Memory for a segmenter's mask at the original size while a protocol encodes it:
        that happens after the image's own reservation is given back."""
        height, width = result.original_size or (0, 0)
        nbytes = mask_bytes(height * width) if job.target.config.task == "segmentation" else 0
        return self.memory.reserve(nbytes, job.deadline, job.is_disconnected)

    @contextmanager
    def counting(self, job: Job) -> Iterator[None]:
        """Count the request in its version's statistics (:mod:`service.engine.statistics`): a
        success with its images' results when the block ends, else, whatever the error (a
        cancellation too), a fail. A version unloaded meanwhile took its statistics with it."""
        try:
            yield
        except BaseException:
            statistics = self._statistics_of(job.target)
            if statistics is not None:
                statistics.failed(time.monotonic() - job.started)
            raise
        statistics = self._statistics_of(job.target)
        if statistics is not None:
            statistics.succeeded(time.monotonic() - job.started, job.results)

    def statistics(
        self, name: str | None = None, version: int | None = None
    ) -> list[tuple[str, int, VersionStatistics]]:
        """(name, version, statistics) of every ready version, of every model when ``name`` is
        None, else of that model (or only its ``version``); raises NotFound or Unavailable as
        :meth:`target` does."""
        if name is None:
            entries = [self.store.models[n] for n in sorted(self.store.models)]
        else:
            entries = [self.store.get(name, version)[0]]
        return [
            (entry.name, loaded.version, loaded.statistics)
            for entry in entries
            for number, loaded in sorted(entry.versions.items())
            if loaded.state == "ready" and version in (None, number)
        ]

    def close(self) -> None:
        self.preprocess_pool.shutdown(wait=True)

    async def _decode(self, job: Job, probed: Probed) -> tuple[torch.Tensor, tuple[int, int]]:
        """Decode in the pool, but answer at the deadline, or as soon as the client has gone,
        even while the decoder still runs: a decode cannot be interrupted, so it finishes in its
        thread and its result is dropped, while one that has not started never starts. The
        backlog counts every decode until its thread is done, abandoned ones included, so
        clients that give up cannot pile up work behind the admitted ones."""
        if not self._backlog.acquire():
            raise Unavailable("too many images are waiting to be decoded; retry later")
        future = self.preprocess_pool.submit(decode, probed, job.target.config.input)
        future.add_done_callback(self._backlog.release)
        decoding = asyncio.wrap_future(future)
        try:
            while True:
                remaining = job.deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceeded(
                        "the request's deadline passed while its image was being decoded; "
                        "send a smaller image or a longer timeout_ms"
                    )
                if job.is_disconnected is not None:
                    remaining = min(remaining, DISCONNECT_POLL_S)
                await asyncio.wait((decoding,), timeout=remaining)
                if decoding.done():
                    return decoding.result()
                if job.is_disconnected is not None and await job.is_disconnected():
                    raise ClientDisconnected("the client disconnected while its image was decoded")
        finally:
            decoding.cancel()  # not started yet: it never will be; done or running: a no-op

    @contextmanager
    def _admit(self, job: Job) -> Iterator[tuple[LoadedVersion, Reservation]]:
        """Refuse before any work is spent, else reserve the image's place in its batcher."""
        if self.draining:
            raise Unavailable("the service is shutting down")
        if time.monotonic() >= job.deadline:
            raise DeadlineExceeded("the request's deadline passed before it could be queued")
        loaded = self._serving(job.target)
        with loaded.batchers[job.with_maps].reserve() as reservation:
            yield loaded, reservation

    def _statistics_of(self, target: Target) -> VersionStatistics | None:
        try:
            return self._serving(target).statistics
        except ServiceError:  # unloaded, or no longer ready
            return None

    def _serving(self, target: Target) -> LoadedVersion:
        """The live version of ``target``: after a reload, the new one of the same number."""
        return self.store.get(target.name, target.version)[1]

    async def _submit(
        self, job: Job, loaded: LoadedVersion, reservation: Reservation, tensor: torch.Tensor
    ) -> Result:
        """Queue the image where it was reserved. If that version was retired meanwhile (a
        reload or unload), it goes to the live one instead: a reload never fails a request, and
        one admitted before an unload gets 503 (it was queued), not the 404 of a later one. A
        drain that began while it was decoded does not refuse it: it was admitted before."""
        if loaded.state != "unloaded":
            try:
                return await reservation.submit(
                    tensor, job.deadline, job.is_disconnected, job.priority
                )
            except Unavailable:
                if loaded.state != "unloaded":
                    raise  # a full queue, not a retired version
        try:
            live = self._serving(job.target)
        except NotFound:
            raise Unavailable(f"model {job.target.name!r} version {job.target.version} was "
                              "unloaded while this request was queued") from None  # fmt: skip
        batcher = live.batchers[job.with_maps]
        return await batcher.submit(tensor, job.deadline, job.is_disconnected, job.priority)
