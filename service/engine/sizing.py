"""SLO-adaptive batch sizes: a model that declares ``target_latency_ms`` (its p99 goal) gets
the largest batch whose worst case still meets it, learnt from its own forward passes.

A fixed ``max_batch_size`` trades latency for throughput once, for every load. Under a
closed loop, the unluckiest image arrives just after a batch of n started: it waits for that
batch, then for the assembly delay, then computes in a batch of n itself, so its time in the
engine is ``2 * t(n) + delay``. With ``t(n) = a * n + b`` fitted online, the cap is the
largest n for which that stays within the target, never more than ``max_batch_size`` and
never less than 1. Load still sets the batch size below the cap (a lone request runs alone),
so batches grow as load rises, up to the cap the target allows.

A target the backlog has already put out of reach is not worth throughput. When more images
wait than rounds of batches at the cap, one batch per instance a round, can clear within the
target, shrinking batches only lowers throughput and lengthens every wait: the next batch then
takes its even share of the backlog over the instances, up to ``max_batch_size``. So a closed
loop at saturation keeps the fixed batch's throughput, while at a load the target can absorb
the cap holds (on 2 cores, se_resnet_sagan with a 100 ms target at concurrency 64: the cap of
3 alone gave 0.78 x the fixed batch's throughput on 2026-12-01, this rule 1.04 x on
2026-12-02, bench part 7).

The fit is robust to noise: each batch size keeps the median of its last few forward passes
(a GC pause or a preempted thread moves no median), and the line goes through those medians,
weighted by how often each size ran. Until two sizes have run, the model is proportional
(``b = 0``, ``a = t(n) / n``): that over-estimates larger batches, so the cap starts low and
rises as larger batches are observed, and it never rises past twice the largest batch
measured so far, so a noisy line through small batches cannot send it far past the target.
While only one size is known, the cap may still go one size past it: for a tight target the
proportional bound can allow just the size already run, and without a second size the line
is never learnt, so the cap stayed there for good. se_resnet_sagan on 2 cores has a large
``b`` (t(1) 9.7 ms, t(2) 14.1 ms in bench part 1): a 60 ms target allows 5 on the line through
them, but 1 on the proportional guess once a busy machine's t(1) passes 13.75 ms.

A size that stops running is forgotten after :data:`HORIZON` forward passes of others, the
two sizes run last excepted, so the line always has two points once it has had them. A
median from the first requests (a cold cache, a neighbour's burst) otherwise stayed in the
fit for as long as the server ran, and once the batches had grown past that size nothing
replaced it.
"""

from __future__ import annotations

import math
from collections import deque
from statistics import median

WINDOW = 16  # forward passes remembered per batch size
HORIZON = 4 * WINDOW  # forward passes after which a size not run since is forgotten


class BatchCost:
    """``t(n) = a * n + b`` in seconds, fitted from observed (batch size, seconds) pairs."""

    def __init__(self, window: int = WINDOW, horizon: int = HORIZON) -> None:
        self._window = window
        self._horizon = horizon
        self._times: dict[int, deque[float]] = {}
        self._passes = 0
        self._last_pass: dict[int, int] = {}  # the pass at which each size last ran

    def observe(self, size: int, seconds: float) -> None:
        self._passes += 1
        self._last_pass[size] = self._passes
        self._times.setdefault(size, deque(maxlen=self._window)).append(seconds)
        self._forget_stale()

    def _forget_stale(self) -> None:
        """Drop the sizes not run for ``horizon`` passes, except the two run last."""
        by_recency = sorted(self._last_pass, key=self._last_pass.__getitem__, reverse=True)
        for size in by_recency[2:]:
            if self._passes - self._last_pass[size] > self._horizon:
                del self._last_pass[size], self._times[size]

    def largest_size(self) -> int:
        return max(self._times, default=0)

    def sizes(self) -> int:
        """How many different batch sizes have been observed."""
        return len(self._times)

    def fit(self) -> tuple[float, float] | None:
        """(a, b), both >= 0; None before the first observation."""
        points = [(n, median(times), len(times)) for n, times in self._times.items()]
        if not points:
            return None
        weight = sum(w for _, _, w in points)
        mean_n = sum(n * w for n, _, w in points) / weight
        mean_t = sum(t * w for _, t, w in points) / weight
        spread = sum(w * (n - mean_n) ** 2 for n, _, w in points)
        if spread > 0:
            slope = sum(w * (n - mean_n) * (t - mean_t) for n, t, w in points) / spread
            intercept = mean_t - slope * mean_n
            if slope > 0 and intercept >= 0:
                return slope, intercept
        # one size only, or noise that makes larger batches look free or the line start below
        # zero: proportional through the medians (least squares with b = 0), an upper bound
        slope = sum(w * n * t for n, t, w in points) / sum(w * n * n for n, _, w in points)
        return slope, 0.0


class BatchSizer:
    """The batch-size cap for one batcher: ``max_batch_size`` without a target, else the
    largest n with ``2 * t(n) + delay <= target`` (see the module docstring)."""

    def __init__(
        self, max_batch_size: int, target_latency_ms: float | None, max_queue_delay_ms: float
    ) -> None:
        self.max_batch_size = max_batch_size
        self.target_s = None if target_latency_ms is None else target_latency_ms / 1000
        self.delay_s = max_queue_delay_ms / 1000
        self.cost = BatchCost()
        # derived from the fit, which only changes when a batch is observed: the batcher reads
        # the cap at every assembly, so it is computed once per forward pass, not per read
        self.fit: tuple[float, float] | None = None
        self._cap = 1 if self.adaptive else max_batch_size
        self._allowed = self._cap  # what the target allows, before the exploration's limit

    @property
    def adaptive(self) -> bool:
        return self.target_s is not None

    def observe(self, size: int, seconds: float) -> None:
        if not self.adaptive:
            return
        self.cost.observe(size, seconds)
        self.fit = self.cost.fit()
        assert self.fit is not None and self.target_s is not None  # just observed; adaptive
        self._allowed = self.allowed(*self.fit, self.target_s)
        # at most twice the largest size measured: a line through a few small batches is too
        # noisy to extrapolate far, so the cap explores upwards by doubling
        largest = self.cost.largest_size()
        self._cap = min(self._allowed, 2 * largest)
        if self.cost.sizes() < 2:  # the line needs a second size: try the next one up
            self._cap = max(self._cap, min(self.max_batch_size, largest + 1))

    def cap(self) -> int:
        """Before anything was measured, 1: one image, whose time is the first observation."""
        return self._cap

    def batch_size(self, backlog: int, instances: int, idle: int) -> int:
        """How many of ``backlog`` waiting images the next batch may take, with ``idle`` of
        the model's ``instances`` free to take one now (the caller's among them).

        Its even share of the backlog over the idle instances: one instance that takes all
        leaves the others idle, and its batch takes longer than the shares would together
        (se_resnet_sagan on 2 cores with 2 instances, 8-image multipart requests one at a
        time: p50 55-61 ms and p99 79-85 ms with the shares, 67-68 ms and 104-109 ms with
        the first instance taking all; 130-141 against 113-114 images/s). Then at most the
        cap while the target can still be met for the whole backlog, else up to
        ``max_batch_size`` (see the module docstring). That is judged on a line through two
        batch sizes at least, with the cap the target allows: the proportional first guess
        and the exploring cap both over-estimate how long the backlog takes."""
        share = max(1, math.ceil(backlog / max(1, idle)))
        if self.lost(backlog, instances):
            return min(self.max_batch_size, share)
        return min(self._cap, share)

    def lost(self, backlog: int, instances: int) -> bool:
        """Whether rounds of batches at the cap, one per instance a round, would keep the
        last of ``backlog`` past the target (never without a target)."""
        if self.fit is None or self.target_s is None or self.cost.sizes() < 2:
            return False
        allowed = self._allowed
        if backlog <= allowed * instances:
            return False
        slope, intercept = self.fit
        rounds = math.ceil(backlog / (allowed * instances))  # the last waiting image's is last
        return rounds * (slope * allowed + intercept) + self.delay_s > self.target_s

    def allowed(self, slope: float, intercept: float, target_s: float) -> int:
        """The largest n with ``2 * t(n) + delay <= target``, within 1 and max_batch_size."""
        budget = (target_s - self.delay_s) / 2 - intercept
        largest = math.floor(budget / slope) if slope > 0 else self.max_batch_size
        return max(1, min(self.max_batch_size, largest))
