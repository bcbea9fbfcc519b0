"""Triton's per model version statistics (the ``statistics`` extension), kept by the engine.

Cumulative since the version was loaded: an unloaded version loses them, and a reload starts
new ones, as Triton does. What each count means in attnserve:

* ``inference_count``: images of successful requests; ``execution_count``: forward passes.
* ``success`` / ``fail``: requests, from the moment the protocol has parsed the request and
  resolved its model (:meth:`Pipeline.job`) until all of its outputs are assembled (``/predict``:
  until its results are encoded). Any error on the way (a bad image, a full queue, an expired
  deadline, a client that went away, a model failure) makes the request a ``fail``; wire
  encoding after that is not timed.
* ``queue``, ``compute_input``, ``compute_infer``, ``compute_output``: per successful request,
  as Triton counts them (one count each per success). ``queue`` is the longest wait of the
  request's images from entering the batcher's queue to the start of their batch; the compute
  stages are summed over the distinct forward passes that computed its images.
* per forward pass (``batch_stats``, by batch size, and the request stages above), in the worker
  thread: ``compute_input`` stacks the batch's already decoded and pre-processed images into one
  tensor (decoding and pre-processing run before the queue and are in ``success`` only);
  ``compute_infer`` is the host-to-device copy, the forward pass and the copy back;
  ``compute_output`` is the finiteness check and the split into per-image results.
* ``cache_hit`` / ``cache_miss`` stay zero: attnserve has no response cache.

Every update runs on the event loop (the batcher records a forward pass after the worker
thread hands it back), so no lock is needed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol


class Execution(NamedTuple):
    """One forward pass that succeeded, as :func:`service.engine.runtime.run_items` timed it."""

    size: int
    input_s: float
    infer_s: float
    output_s: float

    @property
    def seconds(self) -> float:
        return self.input_s + self.infer_s + self.output_s


class Computed(Protocol):
    """What a request's statistics need of each of its results (a :class:`Result`)."""

    @property
    def queue_ms(self) -> float: ...
    @property
    def execution(self) -> Execution | None: ...


@dataclass
class Duration:
    """Triton's ``StatisticDuration``: a count and the nanoseconds they took together."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += max(int(seconds * 1e9), 0)


@dataclass
class BatchStatistics:
    """The forward passes of one batch size (Triton's ``InferBatchStatistics``)."""

    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)

    def add(self, execution: Execution) -> None:
        self.compute_input.add(execution.input_s)
        self.compute_infer.add(execution.infer_s)
        self.compute_output.add(execution.output_s)


@dataclass
class VersionStatistics:
    """One loaded model version's counters; fed by its batchers and by :meth:`Pipeline.counting`."""

    last_inference_ms: int = 0  # ms since the epoch of the last successful request; 0: none yet
    inference_count: int = 0
    execution_count: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute: BatchStatistics = field(default_factory=BatchStatistics)  # per successful request
    cache_hit: Duration = field(default_factory=Duration)
    cache_miss: Duration = field(default_factory=Duration)
    batches: dict[int, BatchStatistics] = field(default_factory=dict)  # key: batch size

    def executed(self, execution: Execution) -> None:
        """A forward pass succeeded (whatever became of its requests)."""
        self.execution_count += 1
        self.batches.setdefault(execution.size, BatchStatistics()).add(execution)

    def succeeded(self, seconds: float, results: Sequence[Computed]) -> None:
        """A request was answered with ``results``, one per image, after ``seconds``."""
        self.success.add(seconds)
        self.inference_count += len(results)
        self.last_inference_ms = int(time.time() * 1000)
        self.queue.add(max((r.queue_ms for r in results), default=0.0) / 1000)
        passes = {id(r.execution): r.execution for r in results if r.execution is not None}
        self.compute.compute_input.add(sum(e.input_s for e in passes.values()))
        self.compute.compute_infer.add(sum(e.infer_s for e in passes.values()))
        self.compute.compute_output.add(sum(e.output_s for e in passes.values()))

    def failed(self, seconds: float) -> None:
        self.fail.add(seconds)
