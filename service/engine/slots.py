"""The instances of one model version as slots that its batchers take before each batch."""

from __future__ import annotations

import asyncio


class WorkerSlots(asyncio.Semaphore):
    """Up to ``size`` batches of one runtime compute at once (its instances), across its with-
    and without-maps batchers. It knows how many are taken, so that a batcher can split a
    backlog over the instances that are idle instead of giving it all to the first."""

    def __init__(self, size: int = 1) -> None:
        super().__init__(size)
        self.size = size
        self.busy = 0

    async def acquire(self) -> bool:
        await super().acquire()
        self.busy += 1  # no await between: a cancelled acquire never counts
        return True

    def release(self) -> None:
        self.busy -= 1
        super().release()

    @property
    def idle(self) -> int:
        return self.size - self.busy
