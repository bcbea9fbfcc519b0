"""One image through the pipeline: decode and pre-process (thread pool), queue, batch,
compute (the model's worker thread). Shared by /predict and the v2 endpoint, so both get the
same batching, deadlines and metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import torch

from models.repository.config import ModelConfig
from service.batcher import ItemResult
from service.errors import DeadlineExceeded, InvalidParameter, Unavailable
from service.imaging import load_for_model
from service.model_store import LoadedVersion
from service.state import AppState

Disconnected = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class Outcome:
    result: ItemResult
    original_size: tuple[int, int]  # (height, width) of the uploaded image
    preprocess_ms: float


def deadline_for(state: AppState, timeout_ms: float | None) -> float:
    """A per-request ``timeout_ms`` may only shorten the configured deadline."""
    limit = state.settings.timeout_ms
    if timeout_ms is not None and timeout_ms <= 0:
        raise InvalidParameter("timeout_ms must be positive")
    chosen = limit if timeout_ms is None else min(timeout_ms, limit)
    return time.monotonic() + chosen / 1000


def admit(state: AppState, loaded: LoadedVersion, with_maps: bool, deadline: float) -> None:
    """Refuse before any work is spent: past the deadline, queue already full, or too many
    images already waiting for pre-processing (the pool's own queue is otherwise unbounded,
    and under overload decoding requests that will be refused delays the admitted ones)."""
    if state.draining:
        raise Unavailable("the service is shutting down")
    if time.monotonic() >= deadline:
        raise DeadlineExceeded("the request's deadline passed before it could be queued")
    batcher = loaded.batchers[with_maps]
    if batcher.queue_depth >= batcher.max_queue_size:
        raise Unavailable(f"the queue for {loaded.name} is full ({batcher.max_queue_size} "
                          "requests waiting); retry after the Retry-After delay")  # fmt: skip
    if state.preprocess_backlog >= state.settings.max_queue_size:
        raise Unavailable("too many images are waiting to be decoded; retry later")


async def run_tensor(
    state: AppState,
    loaded: LoadedVersion,
    tensor: torch.Tensor,
    with_maps: bool,
    deadline: float,
    is_disconnected: Disconnected | None,
) -> ItemResult:
    """Queue one pre-processed image. If the version was retired (a reload or unload) between
    the lookup and now, the model is looked up again: a reload never fails a request."""
    if state.draining:
        raise Unavailable("the service is shutting down")
    if loaded.state == "unloaded":
        _, loaded = state.store.get(loaded.name, loaded.version)
    try:
        return await loaded.batchers[with_maps].submit(tensor, deadline, is_disconnected)
    except Unavailable:
        if loaded.state != "unloaded":
            raise  # a full queue, not a retired version
        _, loaded = state.store.get(loaded.name, loaded.version)
        return await loaded.batchers[with_maps].submit(tensor, deadline, is_disconnected)


async def run_image(
    state: AppState,
    loaded: LoadedVersion,
    config: ModelConfig,
    data: bytes,
    with_maps: bool,
    deadline: float,
    is_disconnected: Disconnected | None,
) -> Outcome:
    admit(state, loaded, with_maps, deadline)
    started = time.perf_counter()
    state.preprocess_backlog += 1
    try:
        with loaded.batchers[with_maps].incoming():
            tensor, size = await asyncio.get_running_loop().run_in_executor(
                state.preprocess_pool,
                lambda: load_for_model(
                    data, config.input, max_pixels=state.settings.max_image_pixels
                ),
            )
    finally:
        state.preprocess_backlog -= 1
    preprocess_s = time.perf_counter() - started
    state.metrics.preprocess_duration.labels(config.name).observe(preprocess_s)
    result = await run_tensor(state, loaded, tensor, with_maps, deadline, is_disconnected)
    return Outcome(result=result, original_size=size, preprocess_ms=preprocess_s * 1000)
