"""The CPU threads, shared out per forward pass among all the passes running at once.

With instances of one thread each, a lone request runs on one core while the other idles: on
2 cores se_resnet_sagan at concurrency 1 answered in 17.9 ms instead of 15.2 ms with one
instance of 2 threads. With one instance of 2 threads, the two cores meet at a barrier in
every parallel region, so saturation stops at 128 req/s instead of 155 with 2 x 1 (bench
results of 2026-12-01). Sharing the threads per pass keeps both: a pass that starts alone
gets them all, and passes that start while others run split them, so the total stays within
the quota except while a pass started alone is still finishing beside a newer one. The store
keeps one share for every CPU pass of every model (service/engine/store.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class CoreShare:
    """``threads`` OpenMP threads shared by the forward passes running at once: each pass, in
    its own instance thread, takes ``threads // running`` (at least one) as it starts."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._running = 0
        self._lock = threading.Lock()

    @contextmanager
    def claim(self) -> Iterator[int]:
        """Count this pass as running and size the calling thread's OpenMP team for it (torch's
        thread count is per calling thread, and setting it costs well under a microsecond)."""
        with self._lock:
            self._running += 1
            share = max(1, self.threads // self._running)
        if torch.get_num_threads() != share:
            torch.set_num_threads(share)
        try:
            yield share
        finally:
            with self._lock:
                self._running -= 1
