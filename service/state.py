"""What the routers share: settings, metrics, the model store, the pre-processing pool, and
whether the service is starting, serving or draining."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fastapi import Request

from service.metrics import Metrics
from service.model_store import ModelStore
from service.settings import Settings


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    store: ModelStore
    preprocess_pool: ThreadPoolExecutor
    postprocess_pool: ThreadPoolExecutor
    draining: bool = False
    preprocess_backlog: int = 0  # images handed to preprocess_pool and not yet decoded
    load_error: str | None = None
    inflight: int = field(default=0)

    @property
    def ready(self) -> bool:
        return not self.draining and self.store.all_ready()


def get_state(request: Request) -> AppState:
    return request.app.state.attnserve
