"""Model instances (Triton's instance_group count): a model with ``instances: 2`` gets two
inference threads, each with its share of the torch threads, two batches in flight at once,
and the same answers as one instance."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import torch

from models.repository.config import read_config, write_config
from models.repository.layout import config_path
from service.engine.store import ModelStore
from service.metrics import Metrics
from service.settings import Settings
from tests.service.engine.batching import soon
from tests.service.fake_models import SIZE, slow_repository

BARRIER_S = 30.0


def with_instances(repo: Path, name: str, instances: int) -> Path:
    path = config_path(repo, name)
    write_config(read_config(path).model_copy(update={"instances": instances}), path)
    return repo


def test_two_instances_run_on_two_threads_with_a_share_of_the_torch_threads(
    tmp_path: Path,
) -> None:
    repo = with_instances(slow_repository(tmp_path, rounds=1), "slow", 2)

    async def scenario() -> None:
        store = ModelStore(repo, Settings(), Metrics(), torch.device("cpu"))
        await store.load_all()
        loaded = store.get("slow", None)[1]
        assert loaded.runtime is not None
        # both tasks must be running at once to pass the barrier: two threads, not one
        barrier = threading.Barrier(2, timeout=BARRIER_S)

        def probe() -> tuple[str, int]:
            barrier.wait()
            return threading.current_thread().name, torch.get_num_threads()

        executor = loaded.runtime.executor
        seen = await asyncio.gather(*(asyncio.wrap_future(executor.submit(probe)) for _ in "ab"))
        names, threads = {name for name, _ in seen}, {count for _, count in seen}
        assert len(names) == 2 and all(n.startswith("attnserve-slow-v1") for n in names)
        assert threads == {max(1, torch.get_num_threads() // 2)}
        slots = loaded.batchers[False].worker_slots
        assert slots is loaded.batchers[True].worker_slots  # the instances serve both batchers
        for _ in "ab":
            await asyncio.wait_for(slots.acquire(), BARRIER_S)  # two batches in flight
        assert slots.locked()  # and no third
        for _ in "ab":
            slots.release()
        await store.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_two_instances_answer_as_one_does(tmp_path: Path) -> None:
    """Twelve images at once through the batcher of a 2-instance model: each answer equals the
    same model's answer with one instance (the setting overriding its config.json)."""
    repo = with_instances(slow_repository(tmp_path, rounds=3), "slow", 2)
    images = [
        torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(i)) for i in range(12)
    ]

    async def answers(settings: Settings) -> list[torch.Tensor]:
        store = ModelStore(repo, settings, Metrics(), torch.device("cpu"))
        await store.load_all()
        batcher = store.get("slow", None)[1].batchers[False]
        results = await asyncio.gather(*(batcher.submit(x, soon(60)) for x in images))
        await store.close()
        return [result.output for result in results]

    async def scenario() -> None:
        two, one = await answers(Settings()), await answers(Settings(instances=1))
        for concurrent, alone in zip(two, one, strict=True):
            torch.testing.assert_close(concurrent, alone, rtol=1e-5, atol=1e-6)

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_the_setting_overrides_the_config(tmp_path: Path) -> None:
    config = read_config(config_path(slow_repository(tmp_path, rounds=1), "slow"))
    assert Settings().instances_for(config) == 1
    assert Settings(instances=3).instances_for(config) == 3
    assert Settings().instances_for(config.model_copy(update={"instances": 2})) == 2
