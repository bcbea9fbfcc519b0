"""What the routers share: settings, metrics, the engine (its store and pipeline), the
post-processing pool, and the HTTP requests in flight. Its state changes only through its own
methods: :meth:`begin_drain` (SIGTERM, then the lifespan's end) and :meth:`track_request` (the
request-metrics middleware)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Request

from service.engine.pipeline import Pipeline
from service.engine.store import ModelStore
from service.metrics import Metrics
from service.settings import Settings


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    store: ModelStore
    pipeline: Pipeline
    postprocess_pool: ThreadPoolExecutor
    inflight: int = 0  # HTTP inference requests being served

    @property
    def draining(self) -> bool:
        return self.pipeline.draining

    @property
    def ready(self) -> bool:
        return not self.draining and self.store.all_ready()

    def begin_drain(self) -> None:
        self.pipeline.drain()
        self.store.stop_loading()

    @contextmanager
    def track_request(self) -> Iterator[None]:
        self.inflight += 1
        self.metrics.inflight.inc()
        try:
            yield
        finally:
            self.inflight -= 1
            self.metrics.inflight.dec()


def get_state(request: Request) -> AppState:
    return request.app.state.attnserve
