"""ModelStore: which thread loads, warms up and runs each version."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import torch

from service.engine.store import ModelStore
from service.errors import Unavailable
from service.metrics import Metrics
from service.settings import Settings
from tests.service.fake_models import build_fault_repository, slow_repository


def test_on_the_cpu_every_single_instance_version_runs_on_one_inference_thread(
    tmp_path: Path,
) -> None:
    """With one instance each, one OpenMP team for all models (see
    service.engine.runtime.inference_thread); a broken model among them neither gets a thread
    of its own nor takes the shared one down."""
    repo = build_fault_repository(tmp_path, slow_rounds=1)

    async def scenario() -> None:
        store = ModelStore(repo, Settings(instances=1), Metrics(), torch.device("cpu"))
        await store.load_all()
        runtimes = [
            loaded.runtime
            for entry in store.models.values()
            for loaded in entry.versions.values()
            if loaded.runtime is not None
        ]
        assert sorted(r.name for r in runtimes) == ["faulty", "slow"]
        first, second = runtimes
        assert first.executor is second.executor
        name = first.executor.submit(lambda: threading.current_thread().name).result()
        assert name.startswith("attnserve-inference")
        first.close()  # a shared thread outlives the close of one runtime
        assert second.executor.submit(lambda: 7).result() == 7
        await store.close()
        with pytest.raises(RuntimeError):  # the store's close stops it
            second.executor.submit(lambda: 7)

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_reload_abandoned_by_shutdown_leaves_the_serving_version(tmp_path: Path) -> None:
    """SIGTERM during a reload: the load stops at its next warm-up size with 503, and the
    version that was serving still serves the drain."""
    repo = slow_repository(tmp_path, rounds=1)

    async def scenario() -> None:
        store = ModelStore(repo, Settings(), Metrics(), torch.device("cpu"))
        await store.load_all()
        serving = store.get("slow", None)[1]
        store.stop_loading()
        with pytest.raises(Unavailable, match="shutting down"):
            await store.load_model("slow")
        assert store.get("slow", None)[1] is serving and serving.state == "ready"
        await store.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
