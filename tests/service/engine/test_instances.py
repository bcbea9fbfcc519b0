"""Model instances (Triton's instance_group count): a model with ``instances: 2`` gets two
inference threads, sharing the torch threads among the passes running at once, two batches
in flight at once, and the same answers as one instance."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import torch

from models.repository.config import read_config, write_config
from models.repository.layout import config_path
from service.engine.runtime import default_instances
from service.engine.store import ModelStore
from service.metrics import Metrics
from service.settings import Settings
from tests.service.engine.batching import soon
from tests.service.fake_models import SIZE, Slow, slow_repository, write_model

BARRIER_S = 30.0


def with_instances(repo: Path, name: str, instances: int) -> Path:
    path = config_path(repo, name)
    write_config(read_config(path).model_copy(update={"instances": instances}), path)
    return repo


def test_two_instances_run_on_two_threads_sharing_the_torch_threads(tmp_path: Path) -> None:
    """A pass that starts alone takes every thread, one that starts beside it half of them (a
    running pass keeps its team until it ends); passes one after the other take them all."""
    repo = with_instances(slow_repository(tmp_path, rounds=1), "slow", 2)

    async def scenario() -> None:
        store = ModelStore(repo, Settings(), Metrics(), torch.device("cpu"))
        await store.load_all()
        loaded = store.get("slow", None)[1]
        assert loaded.runtime is not None
        # both tasks must be running at once to pass the barrier: two threads, not one
        barrier = threading.Barrier(2, timeout=BARRIER_S)

        cores = loaded.runtime.cores
        assert cores is not None and cores.threads == torch.get_num_threads()

        def probe(together: bool) -> tuple[str, int]:
            with cores.claim():
                if together:
                    barrier.wait()
                return threading.current_thread().name, torch.get_num_threads()

        executor = loaded.runtime.executor
        both = (asyncio.wrap_future(executor.submit(probe, True)) for _ in "ab")
        seen = await asyncio.gather(*both)
        names, threads = {name for name, _ in seen}, sorted(count for _, count in seen)
        assert len(names) == 2 and all(n.startswith("attnserve-slow-v1") for n in names)
        assert threads == sorted([cores.threads, max(1, cores.threads // 2)])
        for _ in "ab":  # one after the other: each alone, on either thread
            _, alone = await asyncio.wrap_future(executor.submit(probe, False))
            assert alone == cores.threads
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
    write_model(tmp_path, "slow", Slow(1), instances=None)
    config = read_config(config_path(tmp_path, "slow"))
    assert Settings().instances_for(config) is None  # neither names one: the device decides
    assert Settings(instances=3).instances_for(config) == 3
    assert Settings().instances_for(config.model_copy(update={"instances": 2})) == 2


def test_the_default_is_two_instances_on_a_cpu_with_two_threads_to_share() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert [default_instances(cpu, threads) for threads in (1, 2, 16)] == [1, 2, 2]
    assert default_instances(gpu, 16) == 1


def test_a_model_without_a_count_gets_the_default_and_shares_the_store_threads(
    tmp_path: Path,
) -> None:
    """Two models without ``instances``: each has default_instances threads of its own, and
    both claim the CPU threads from one CoreShare, so their passes never oversubscribe."""
    for name in ("slow", "other"):
        write_model(tmp_path, name, Slow(1), max_batch_size=4, instances=None)
    repo = tmp_path

    async def scenario() -> None:
        store = ModelStore(repo, Settings(), Metrics(), torch.device("cpu"))
        await store.load_all()
        runtimes = [store.get(name, None)[1].runtime for name in ("slow", "other")]
        assert all(runtime is not None for runtime in runtimes)
        expected = default_instances(torch.device("cpu"), torch.get_num_threads())
        assert [runtime.executor._max_workers for runtime in runtimes] == [expected] * 2
        assert runtimes[0].cores is runtimes[1].cores is not None
        await store.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))
