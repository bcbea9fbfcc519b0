"""ModelStore: which thread loads, warms up and runs each version."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import torch

from service.engine.store import ModelStore
from service.metrics import Metrics
from service.settings import Settings
from tests.service.fake_models import build_fault_repository


def test_on_the_cpu_every_version_runs_on_one_inference_thread(tmp_path: Path) -> None:
    """One OpenMP team for all models (see service.engine.runtime.inference_thread); a broken model
    among them neither gets a thread of its own nor takes the shared one down."""
    repo = build_fault_repository(tmp_path, slow_rounds=1)

    async def scenario() -> None:
        store = ModelStore(repo, Settings(), Metrics(), torch.device("cpu"))
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
