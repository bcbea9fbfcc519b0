"""The memory budget: every image reserves its worst-case bytes before it is decoded, and gives
them back when its request is done with it, so the service refuses what it cannot afford
instead of being OOM-killed with every request in flight.

The estimate comes from the image's header (:func:`service.imaging.probe`, read once for admission
and decode alike), the
model's input, output and map sizes, and for a segmenter the mask at the original size. An
image that could never fit the whole budget is 413; one that does not fit now waits, at most
:data:`MAX_WAIT_S` and never past its deadline, then gets 503 with ``Retry-After``.

The budget is ``ATTNSERVE_MEMORY_BUDGET_MB`` when set (0: off), else the cgroup's memory limit
less :data:`PROCESS_SHARE_MB` for the process itself; without a cgroup limit there is none.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from prometheus_client import Gauge

from models.repository.config import ModelConfig
from service.engine.queue import DISCONNECT_POLL_S, Disconnected
from service.errors import ClientDisconnected, DeadlineExceeded, PayloadTooLarge, Unavailable
from service.imaging import Probed
from service.memory_limit import cgroup_memory_limit

MB = 1024 * 1024
#: What the process needs before any request: Python, torch, both demo models, the batchers'
#: threads. An idle demo server measured 424 MiB RSS (438 MiB after warm-up requests, 443 MiB
#: peak, torch 2.13 CPU); the rest covers request bodies read before admission.
PROCESS_SHARE_MB = 512
#: Decoding holds the frame as Pillow stores it (:data:`SOURCE_BYTES_PER_PIXEL`), then, at
#: worst, two 4-byte-a-pixel frames at once (Pillow keeps RGB as RGBX): the RGB conversion and
#: an EXIF transpose or the white background an alpha channel is composited over.
CONVERSION_BYTES_PER_PIXEL = 8
#: Bytes a pixel of the modes Pillow stores in one; every other mode takes four (16-bit grey
#: is 2, but its conversion makes a float32 copy of it).
SOURCE_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1}
FLOAT_BYTES = 4
#: Upsampling logits to a large original runs in tiles of about this many class scores (4 MiB
#: of float32; :mod:`service.protocols.predict.encoding` tiles by it), so its working memory is
#: a constant whatever the image's shape: a 40,000,000 x 1 strip costs its mask (one byte a
#: pixel) and a few tiles, never classes x 64 x width floats.
MASK_TILE_ELEMENTS = 1_000_000
#: A mask at the original size, as measured for the README: about 5 bytes a pixel (the mask,
#: the PNG encoder's buffers, the base64 text) and a fixed ~25 MB for the float32 tiles of
#: class scores (:data:`MASK_TILE_ELEMENTS` each, a few alive at once).
MASK_BYTES_PER_PIXEL = 5
MASK_TILE_BYTES = 6 * FLOAT_BYTES * MASK_TILE_ELEMENTS
#: How long an image waits for room before its client is told to retry.
MAX_WAIT_S = 1.0
RETRY_AFTER_S = 1


def budget_bytes(setting_mb: int | None, limit: int | None = None) -> int:
    """The budget in bytes, 0 for none: ``ATTNSERVE_MEMORY_BUDGET_MB`` when set, else the
    cgroup limit (``limit``, read when None) less :data:`PROCESS_SHARE_MB`."""
    if setting_mb is not None:
        return setting_mb * MB
    limit = cgroup_memory_limit() if limit is None else limit
    if limit is None:
        return 0
    return max(MB, limit - PROCESS_SHARE_MB * MB)


def mask_bytes(pixels: int) -> int:
    """A segmenter's mask at ``pixels`` of the original size, while it is computed and encoded."""
    return MASK_BYTES_PER_PIXEL * pixels + MASK_TILE_BYTES


def tensor_bytes(config: ModelConfig, with_maps: bool) -> int:
    """The model's input, its output (a segmenter's at most one score per class and input
    pixel) and, when asked for, every map, all float32; a map's dimension that varies (-1)
    counts as the input's longer side."""
    pixels = config.input.height * config.input.width
    output = config.num_classes * (pixels if config.task == "segmentation" else 1)
    side = max(config.input.height, config.input.width)
    shapes = config.map_shapes.values() if with_maps else ()
    maps = sum(math.prod(side if d == -1 else d for d in shape) for shape in shapes)
    return FLOAT_BYTES * (3 * pixels + output + maps)


def image_bytes(config: ModelConfig, with_maps: bool, probed: Probed) -> int:
    """The worst case of one encoded image: its bytes, the model's tensors, and the larger of
    its decode and a segmenter's mask at the original size (the decoded frame is gone before
    the mask is built), so an image whose mask could never fit is refused before any work.
    An image over the pixel limit counts its bytes alone: the decoder refuses it (413); one
    whose header could not be read counts no pixels (the decoder gives the client its 400)."""
    pixels, nbytes = probed.pixels, probed.nbytes
    if pixels > probed.max_pixels:
        return nbytes
    per_pixel = SOURCE_BYTES_PER_PIXEL.get(probed.mode, 4) + CONVERSION_BYTES_PER_PIXEL
    mask = mask_bytes(pixels) if config.task == "segmentation" else 0
    return nbytes + tensor_bytes(config, with_maps) + max(per_pixel * pixels, mask)


class MemoryBudget:
    """Bytes reserved by the images in flight, at most ``budget`` (0: no budget). Reserved and
    released on the event loop only; the gauges show both figures."""

    def __init__(self, budget: int, reserved_gauge: Gauge, budget_gauge: Gauge) -> None:
        self.budget = budget
        self.reserved = 0
        self._gauge = reserved_gauge
        self._freed: asyncio.Event | None = None
        budget_gauge.set(budget)

    @asynccontextmanager
    async def reserve(
        self, nbytes: int, deadline: float, is_disconnected: Disconnected | None = None
    ) -> AsyncIterator[None]:
        """Hold ``nbytes`` for the body of the ``async with``; released however it ends."""
        if self.budget <= 0:
            yield
            return
        if nbytes > self.budget:
            raise PayloadTooLarge(
                f"this image needs up to {nbytes / MB:,.1f} MB, more than the whole memory "
                f"budget of {self.budget / MB:,.1f} MB: send a smaller image"
            )
        await self._wait_for_room(nbytes, deadline, is_disconnected)
        self._add(nbytes)
        try:
            yield
        finally:
            self._add(-nbytes)
            if self._freed is not None:
                self._freed.set()

    async def _wait_for_room(
        self, nbytes: int, deadline: float, is_disconnected: Disconnected | None
    ) -> None:
        give_up = min(deadline, time.monotonic() + MAX_WAIT_S)
        while self.reserved + nbytes > self.budget:
            now = time.monotonic()
            if now >= deadline:
                raise DeadlineExceeded("the request's deadline passed while it waited for memory")
            if now >= give_up:
                raise Unavailable(
                    f"the memory budget ({self.budget / MB:,.0f} MB) is in use; retry later",
                    retry_after_s=RETRY_AFTER_S,
                )
            if self._freed is None:
                self._freed = asyncio.Event()
            self._freed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), min(give_up - now, DISCONNECT_POLL_S))
            if is_disconnected is not None and await is_disconnected():
                raise ClientDisconnected("the client disconnected while it waited for memory")

    def _add(self, nbytes: int) -> None:
        self.reserved += nbytes
        self._gauge.set(self.reserved)
