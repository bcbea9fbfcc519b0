"""Pipeline: one image or tensor to a Result through a real store of fake models (admission,
deadlines, draining, 503 while loading, and the retry after a reload)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from service.engine.pipeline import Pipeline
from service.engine.store import ModelStore
from service.errors import DeadlineExceeded, InvalidParameter, NotFound, Unavailable
from service.metrics import Metrics
from service.settings import Settings
from tests.service.fake_models import FLIP_LABEL, SIZE, Constant, add_flip_version, write_model
from tests.service.images import encode, solid

Scenario = Callable[[Pipeline, ModelStore], Awaitable[None]]


def run_with(repo: Path, scenario: Scenario, load: bool = True) -> None:
    async def main() -> None:
        settings = Settings(device="cpu")
        metrics = Metrics()
        store = ModelStore(repo, settings, metrics, torch.device("cpu"))
        pipeline = Pipeline(store, settings, metrics)
        try:
            if load:
                await store.load_all()
            await scenario(pipeline, store)
        finally:
            await store.close()
            pipeline.close()

    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.fixture
def flip_repo(tmp_path: Path) -> Path:
    write_model(tmp_path, "flip", Constant(0))
    return tmp_path


def label(result_output: torch.Tensor) -> str:
    return ["dark", "light"][int(result_output.argmax())]


def test_an_image_and_a_tensor_give_one_result_type(flip_repo: Path) -> None:
    async def scenario(pipeline: Pipeline, _: ModelStore) -> None:
        target = pipeline.target(None, None)
        assert (target.name, target.version, target.versions) == ("flip", 1, (1,))
        image = await pipeline.run_image(pipeline.job(target, True), solid((9, 9, 9), 20))
        assert image.original_size == (20, 20) and image.preprocess_ms > 0
        assert set(image.maps) == {"energy"} and label(image.output) == "dark"
        tensor = await pipeline.run_tensor(pipeline.job(target, False), torch.zeros(3, SIZE, SIZE))
        assert tensor.original_size is None and tensor.maps == {}
        assert tensor.batch_size == 1 and label(tensor.output) == "dark"

    run_with(flip_repo, scenario)


def test_refusals_come_before_any_work(flip_repo: Path) -> None:
    async def scenario(pipeline: Pipeline, _: ModelStore) -> None:
        target = pipeline.target("flip", None)
        with pytest.raises(InvalidParameter):
            pipeline.job(target, False, timeout_ms=0)
        late = pipeline.job(target, False, timeout_ms=1e-6)
        await asyncio.sleep(0.01)
        with pytest.raises(DeadlineExceeded):
            await pipeline.run_image(late, b"not even an image")
        with pytest.raises(NotFound, match="unknown model 'nope'"):
            pipeline.target("nope", None)
        pipeline.drain()
        with pytest.raises(Unavailable, match="shutting down"):
            await pipeline.run_image(pipeline.job(target, False), b"not even an image")

    run_with(flip_repo, scenario)


def test_an_image_admitted_before_a_drain_is_answered_though_decoded_after(
    flip_repo: Path,
) -> None:
    """SIGTERM while an admitted image is still being decoded: it is served, not refused."""

    async def scenario(pipeline: Pipeline, _: ModelStore) -> None:
        target = pipeline.target("flip", None)
        batcher = pipeline.store.get("flip", None)[1].batchers[False]
        image = encode(np.random.default_rng(0).integers(0, 256, (3000, 3000, 3), np.uint8))
        running = asyncio.create_task(pipeline.run_image(pipeline.job(target, False), image))
        while not batcher._incoming:  # reserved: admitted, and decoding now
            assert not running.done(), running
            await asyncio.sleep(0.001)
        pipeline.drain()
        assert label((await running).output) == "dark"

    run_with(flip_repo, scenario)


def test_while_the_store_is_loading_an_unknown_model_is_unavailable(flip_repo: Path) -> None:
    async def scenario(pipeline: Pipeline, store: ModelStore) -> None:
        with pytest.raises(Unavailable, match="still loading") as refused:
            pipeline.target(None, None)
        assert refused.value.headers == {"Retry-After": "1"}
        await store.load_all()
        assert pipeline.target(None, None).name == "flip"

    run_with(flip_repo, scenario, load=False)


def test_an_image_in_flight_during_a_reload_is_answered(flip_repo: Path) -> None:
    async def scenario(pipeline: Pipeline, store: ModelStore) -> None:
        add_flip_version(flip_repo, 2)
        await store.load_model("flip")
        target = pipeline.target("flip", 2)
        served = await pipeline.run_tensor(pipeline.job(target, False), torch.zeros(3, SIZE, SIZE))
        assert label(served.output) == "light"
        decoding = asyncio.create_task(
            pipeline.run_image(pipeline.job(target, False), solid((9, 9, 9), 2000))
        )
        await asyncio.sleep(0)  # reserved on version 2, now decoding
        await store.load_model("flip")  # a reload retires that version 2 for a new one
        result = await decoding
        assert label(result.output) == FLIP_LABEL[2]

    run_with(flip_repo, scenario)
