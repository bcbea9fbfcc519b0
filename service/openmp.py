"""OpenMP's wait policy for the service: set before torch loads libgomp, which reads it once.

torch's CPU kernels run on libgomp. By default a thread that reaches the end of a parallel
region spins, burning its core, until the next region starts. On a machine of its own that
saves a futex wake-up per region. Beside other work it is a disaster: the spinning thread
takes the core that decoding, HTTP or a neighbour's process needs, and when the kernel
preempts one of the team's threads the others spin at every barrier until it comes back.
Measured on 2 cores with another process busy (se_resnet_sagan, 2 threads, batch 1): 180-640
ms and 155-360 ms of CPU per image with the default, 20-35 ms and 10-17 ms of CPU with
``OMP_WAIT_POLICY=PASSIVE`` (and 80-100 ms with ``GOMP_SPINCOUNT=10000``). On the same
machine nearly quiet, passive costs about 1 ms at batch 1 (5.2 -> 6.3 ms) and 2-5 % at batch
16 (45.5 -> 47.6 ms), and uses less CPU per image (10.6 -> 8.9 ms at batch 1: no core spent
spinning). The service always shares its cores (decode, HTTP, other replicas), so it waits
passively unless the environment already says otherwise; ``OMP_WAIT_POLICY=ACTIVE`` buys the
millisecond back on a machine of its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def apply_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set each default the environment leaves unset. Only effective before torch is imported
    (libgomp reads its variables when it loads), so it refuses to run after."""
    if "torch" in sys.modules:
        raise RuntimeError("service.openmp.apply_defaults() must run before torch is imported")
    for key, value in DEFAULTS.items():
        environ.setdefault(key, value)
