"""The memory budget: the worst-case estimate of each kind of image, 413 for one that could
never fit, a bounded wait then 503 (or 504 at the deadline) for one that does not fit now, and
the reservation given back on every path: success, error, cancellation, a client gone."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import torch
from prometheus_client import CollectorRegistry, Gauge

from models.repository.config import InputSpec, ModelConfig
from service.engine.memory import (
    CONVERSION_BYTES_PER_PIXEL,
    MASK_BYTES_PER_PIXEL,
    MASK_TILE_BYTES,
    MB,
    PROCESS_SHARE_MB,
    MemoryBudget,
    budget_bytes,
    image_bytes,
    mask_bytes,
    tensor_bytes,
)
from service.engine.pipeline import Pipeline
from service.engine.store import ModelStore
from service.errors import (
    ClientDisconnected,
    DeadlineExceeded,
    InvalidImage,
    PayloadTooLarge,
    Unavailable,
)
from service.imaging import probe
from service.metrics import Metrics
from service.settings import Settings
from tests.reliability.corpus.strips import bilevel_strip
from tests.service.fake_models import Constant, write_model
from tests.service.images import solid

CLASSIFIER = ModelConfig(
    name="c", task="classification", input=InputSpec(height=8, width=8), labels=["a", "b"],
    attention_maps=["m", "v"], map_shapes={"m": [4, 4], "v": [-1]},
)  # fmt: skip
SEGMENTER = CLASSIFIER.model_copy(update={"name": "s", "task": "segmentation"})
TENSORS = 4 * 3 * 64  # the float32 input of 8 x 8


def budget(nbytes: int) -> MemoryBudget:
    registry = CollectorRegistry()
    reserved, total = (Gauge(name, name, registry=registry) for name in ("reserved", "budget"))
    return MemoryBudget(nbytes, reserved, total)


def far() -> float:
    return time.monotonic() + 30


def test_the_budget_comes_from_the_setting_or_the_cgroup() -> None:
    assert budget_bytes(300) == 300 * MB
    assert budget_bytes(0, limit=1024 * MB) == 0  # 0: off, whatever the cgroup says
    assert budget_bytes(None, limit=1024 * MB) == (1024 - PROCESS_SHARE_MB) * MB


def test_the_estimate_of_each_kind_of_image() -> None:
    assert tensor_bytes(CLASSIFIER, False) == TENSORS + 4 * 2
    assert tensor_bytes(CLASSIFIER, True) == TENSORS + 4 * 2 + 4 * (16 + 8)  # -1: the longer side
    assert tensor_bytes(SEGMENTER, False) == TENSORS + 4 * 2 * 64
    small, wide = solid((1, 2, 3), 20), bilevel_strip(100_000, 1)
    # an RGB image: Pillow's 4 bytes a pixel, then its conversions
    assert image_bytes(CLASSIFIER, False, probe(small, max_pixels=10**6)) == (
        len(small) + (4 + CONVERSION_BYTES_PER_PIXEL) * 400 + tensor_bytes(CLASSIFIER, False)
    )
    # a 1-bit strip is stored in one byte a pixel; a segmenter's mask at the original size
    # comes after the decoded frame is gone: the larger of the two counts
    decode = (1 + CONVERSION_BYTES_PER_PIXEL) * 100_000
    assert image_bytes(SEGMENTER, False, probe(wide, max_pixels=10**6)) == (
        len(wide) + tensor_bytes(SEGMENTER, False) + max(decode, mask_bytes(100_000))
    )
    assert mask_bytes(100_000) == MASK_BYTES_PER_PIXEL * 100_000 + MASK_TILE_BYTES > decode
    # over the pixel limit: the decoder refuses it before decoding; no readable header: the
    # decoder's 400 comes before any tensor exists, but the estimate keeps them
    assert image_bytes(CLASSIFIER, False, probe(wide, max_pixels=1000)) == len(wide)
    junk = probe(b"junk", max_pixels=1000)
    assert image_bytes(CLASSIFIER, False, junk) == 4 + tensor_bytes(CLASSIFIER, False)


def test_never_fits_is_413_does_not_fit_now_is_503_then_504() -> None:
    async def main() -> None:
        memory = budget(100)
        with pytest.raises(PayloadTooLarge, match="more than the whole memory budget"):
            async with memory.reserve(101, far()):
                pass
        async with memory.reserve(60, far()):
            with pytest.raises(Unavailable, match="memory budget") as busy:
                async with memory.reserve(60, far()):
                    pass
            assert busy.value.headers == {"Retry-After": "1"}
            with pytest.raises(DeadlineExceeded):
                async with memory.reserve(60, time.monotonic() + 0.1):
                    pass
            assert memory.reserved == 60
        assert memory.reserved == 0

    asyncio.run(main())


def test_a_waiting_image_is_admitted_when_room_is_freed() -> None:
    async def main() -> None:
        memory, order = budget(100), []

        async def hold() -> None:
            async with memory.reserve(80, far()):
                await asyncio.sleep(0.2)
                order.append("first done")

        async def wait() -> None:
            await asyncio.sleep(0.05)
            async with memory.reserve(80, far()):
                order.append("second admitted")

        await asyncio.gather(hold(), wait())
        assert order == ["first done", "second admitted"] and memory.reserved == 0

    asyncio.run(main())


def test_released_on_error_cancel_and_client_gone() -> None:
    async def main() -> None:
        memory = budget(100)
        with pytest.raises(RuntimeError):
            async with memory.reserve(70, far()):
                raise RuntimeError("the request failed")
        assert memory.reserved == 0
        entered = asyncio.Event()

        async def held() -> None:
            async with memory.reserve(70, far()):
                entered.set()
                await asyncio.sleep(30)

        task = asyncio.create_task(held())
        await entered.wait()
        assert memory.reserved == 70
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert memory.reserved == 0

        async def gone() -> bool:
            return True

        async with memory.reserve(70, far()):
            with pytest.raises(ClientDisconnected):
                async with memory.reserve(70, far(), gone):
                    pass
        assert memory.reserved == 0

    asyncio.run(main())


def test_the_pipeline_reserves_and_releases_on_every_path(tmp_path: Path) -> None:
    write_model(tmp_path, "flip", Constant(0))

    async def main() -> None:
        settings = Settings(device="cpu", memory_budget_mb=1)
        metrics = Metrics()
        store = ModelStore(tmp_path, settings, metrics, torch.device("cpu"))
        pipeline = Pipeline(store, settings, metrics)
        try:
            await store.load_all()
            job = pipeline.job(pipeline.target(None, None), True)
            assert (await pipeline.run_image(job, solid((9, 9, 9), 20))).original_size == (20, 20)
            with pytest.raises(InvalidImage):
                await pipeline.run_image(job, solid((9, 9, 9), 20)[:-40])  # truncated
            assert pipeline.memory.reserved == 0
            with pytest.raises(PayloadTooLarge, match=r"memory budget of 1\.0 MB"):
                await pipeline.run_image(job, solid((9, 9, 9), 400))  # 160,000 px x 12 B
            await pipeline.run_tensor(job, torch.zeros(3, 8, 8))
            assert pipeline.memory.reserved == 0
            text = metrics.render().decode()
            assert "attnserve_memory_budget_bytes 1.048576e+06" in text
            assert "attnserve_memory_reserved_bytes 0.0" in text
        finally:
            await store.close()
            pipeline.close()

    asyncio.run(asyncio.wait_for(main(), 60))
