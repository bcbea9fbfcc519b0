"""The forward passes a lone request's images run as in the test servers: shared evenly over
the idle instances (``BatchSizer.batch_size`` in service/engine/sizing.py), which the
statistics tests count."""

from __future__ import annotations

import math
from collections import Counter

#: the CPU default for the 2 threads the test servers ask for (runtime.default_instances)
DEMO_INSTANCES = 2


def lone_request_passes(images: int, instances: int = DEMO_INSTANCES) -> list[int]:
    """The batch sizes of a request of ``images`` sent while every instance is idle."""
    sizes, left = [], images
    for idle in range(instances, 0, -1):
        if left:
            sizes.append(math.ceil(left / idle))
            left -= sizes[-1]
    return sizes


def passes_by_size(requests: list[int]) -> Counter[int]:
    """How many passes of each batch size requests of these sizes, sent one after the other,
    run as."""
    return Counter(size for images in requests for size in lone_request_passes(images))
