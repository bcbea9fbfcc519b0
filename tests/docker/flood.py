"""The mixed flood of the memory-limited container test: every kind of request that costs the
service memory, at its limits, sent by a few clients for a bounded time and count.

Built from the hostile corpus's builders: large and tiny images, segmentation masks of very
wide strips, every map, multipart requests at the file cap (64 files, about 20 MB), v2 batches
at the cap (64 encoded images, 64 FP32 tensors)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import httpx
import numpy as np

from tests.reliability.corpus import images as img
from tests.reliability.corpus.strips import bilevel_strip
from tests.reliability.hostile_images import STRIP
from tests.reliability.hostile_inputs import CLASSIFIER, PNG, SEGMENTER, V2_INFER, Case
from tests.reliability.hostile_requests import MULTIPART, file_section, multipart
from tests.reliability.hostile_v2 import fp32_input, v2, v2_images
from tests.service.images import encode

FILE_CAP = 64  # ATTNSERVE_MAX_FILES_PER_REQUEST's default
NOISE_SIDE = 320  # a 320 x 320 noise PNG is ~300 kB: 64 of them are just under the 20 MB cap
CLIENTS = 6
REQUEST_TIMEOUT_S = 30.0
EVERY_MAP = {"attention": "true"}
#: 64 Mpx: under :data:`MAX_IMAGE_PIXELS`, but its 12 bytes a pixel could never fit 512 MB
HUGE_SIDE = 8000
#: the pixel cap the container runs with: above the default, so the budget alone refuses
MAX_IMAGE_PIXELS = 100_000_000


def solid_png(width: int, height: int) -> bytes:
    """A one-colour PNG: a few kB on the wire, ``width`` x ``height`` once decoded."""
    return encode(np.full((height, width, 3), 200, dtype=np.uint8))


def raw(name: str, body: bytes, model: str, **params: str) -> Case:
    """/predict of one image's bytes."""
    return Case(name, 200, "", headers=PNG, content=lambda: body, params={"model": model, **params})


@cache
def mix() -> tuple[Case, ...]:
    """One of each request, bodies built once (the status field is unused here)."""
    tiny, large, huge = img.png(), solid_png(6000, 6000), solid_png(HUGE_SIDE, HUGE_SIDE)
    noise = img.encode(img.noise(NOISE_SIDE, NOISE_SIDE), "PNG")
    at_cap = multipart(*[file_section(noise)] * FILE_CAP)
    tensors = np.zeros((FILE_CAP, 3, 64, 64), dtype="<f4").tobytes()
    fp32 = fp32_input([FILE_CAP, 3, 64, 64], parameters={"binary_data_size": len(tensors)})
    segmenter_v2 = V2_INFER.replace(CLASSIFIER, SEGMENTER)
    return (
        raw("tiny, every map", tiny, CLASSIFIER, **EVERY_MAP),
        raw("tiny segmenter, every map", tiny, SEGMENTER, **EVERY_MAP),
        raw("6000x6000, every map", large, CLASSIFIER, **EVERY_MAP),
        raw(f"{HUGE_SIDE}x{HUGE_SIDE} (never fits)", huge, SEGMENTER),
        raw("40,000,000x1 strip mask", bilevel_strip(STRIP, 1), SEGMENTER),
        raw("100,000x1 strip mask, every map", bilevel_strip(100_000, 1), SEGMENTER, **EVERY_MAP),
        Case(
            "multipart at the cap",
            200,
            "",
            headers=MULTIPART,
            content=lambda: at_cap,
            params={"model": CLASSIFIER, **EVERY_MAP},
        ),
        v2_images("v2 BYTES batch at the cap", 200, "", *[tiny] * FILE_CAP),
        v2("v2 FP32 batch at the cap", 200, "", fp32, tail=tensors),
        v2_images("v2 segmenter batch", 200, "", *[large] * 4, path=segmenter_v2),
    )


def flood(url: str, duration_s: float, max_requests: int) -> dict[str, Counter[str]]:
    """Per request of the mix, its statuses (or transport errors by name), sent round-robin by
    :data:`CLIENTS` clients until ``duration_s`` passes or ``max_requests`` were sent."""
    cases, lock = mix(), threading.Lock()
    outcomes: dict[str, Counter[str]] = {case.name: Counter() for case in cases}
    sent, stop_at = itertools.count(), time.monotonic() + duration_s

    def client() -> None:
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as http:
            while time.monotonic() < stop_at and (index := next(sent)) < max_requests:
                case = cases[index % len(cases)]
                try:
                    outcome = str(http.send(case.build(http)).status_code)
                except httpx.TransportError as error:
                    outcome = type(error).__name__
                with lock:
                    outcomes[case.name][outcome] += 1

    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(client) for _ in range(CLIENTS)]:
            future.result()
    return outcomes
