"""VersionStatistics: Triton's counters, counted per image, per forward pass and per request."""

from __future__ import annotations

import time

import torch

from service.engine.result import Result
from service.engine.runtime import run_items
from service.engine.statistics import Execution, VersionStatistics


def result(execution: Execution, queue_ms: float) -> Result:
    return Result(torch.zeros(2), batch_size=execution.size, queue_ms=queue_ms, execution=execution)


def test_images_passes_and_requests_are_counted_apart() -> None:
    stats = VersionStatistics()
    shared, alone = Execution(2, 0.001, 0.010, 0.002), Execution(1, 0.003, 0.020, 0.004)
    for execution in (shared, alone):
        stats.executed(execution)
    # one request of three images: two computed together, one in a pass of its own
    before = int(time.time() * 1000)
    stats.succeeded(0.5, [result(shared, 30.0), result(shared, 40.0), result(alone, 70.0)])
    stats.failed(0.25)

    assert stats.inference_count == 3  # images, not requests and not passes
    assert stats.execution_count == 2
    assert (stats.success.count, stats.success.ns) == (1, 500_000_000)
    assert (stats.fail.count, stats.fail.ns) == (1, 250_000_000)
    assert (stats.queue.count, stats.queue.ns) == (1, 70_000_000)  # its slowest image's wait
    # each distinct pass once, though two of its images shared one
    assert (stats.compute.compute_input.count, stats.compute.compute_input.ns) == (1, 4_000_000)
    assert stats.compute.compute_infer.ns == 30_000_000
    assert stats.compute.compute_output.ns == 6_000_000
    assert stats.last_inference_ms >= before
    assert sorted(stats.batches) == [1, 2]
    assert stats.batches[2].compute_infer.count == 1
    assert stats.batches[2].compute_infer.ns == 10_000_000
    assert stats.cache_hit.count == stats.cache_miss.count == 0


def test_a_failed_request_counts_no_inference() -> None:
    stats = VersionStatistics()
    stats.failed(0.1)
    assert stats.inference_count == stats.success.count == stats.queue.count == 0
    assert stats.last_inference_ms == 0


class Doubler:
    def run_batch(
        self, batch: torch.Tensor, with_maps: bool
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return batch.flatten(1)[:, :2] * 2, {}


def test_run_items_times_each_pass_and_its_results_refer_to_it() -> None:
    runs: list[Execution] = []
    outcomes = run_items(Doubler(), [torch.ones(3, 4, 4) for _ in range(3)], False, runs)
    assert len(runs) == 1 and runs[0].size == 3
    assert min(runs[0].input_s, runs[0].infer_s, runs[0].output_s) >= 0
    assert all(isinstance(o, Result) and o.execution is runs[0] for o in outcomes)
