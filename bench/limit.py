"""Part 1, the limit: what the model computes in-process, with nothing in between.

Each model is loaded the way the service loads it (``TorchScriptFormat().load``, which applies
``optimize_for_inference``), warmed at every batch size first (as the service warms up), then
timed per batch, in round-robin rounds. A figure is the median of its quietest round, so a
neighbour's burst on a shared machine moves the tail (reported as p90 over every call), not
the figure the goals are compared with.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.stats import percentile
from models.repository.config import ModelConfig
from models.repository.formats import TorchScriptFormat
from service.imaging import load_for_model

WARMUP_CALLS = 2
MIN_CALLS = 3
ROUNDS = 3
MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class BatchCell:
    model: str
    batch: int
    calls: int
    median_ms: float
    p90_ms: float

    @property
    def images_per_s(self) -> float:
        return self.batch / (self.median_ms / 1000)

    @property
    def ms_per_image(self) -> float:
        return self.median_ms / self.batch


@dataclass(frozen=True)
class SingleImage:
    """One JPEG end to end in-process: decode + pre-process, then a batch-1 forward."""

    model: str
    calls: int
    decode_ms: float  # medians
    forward_ms: float
    total_ms: float
    total_p90_ms: float


def time_calls(call: Callable[[], object], cell_s: float, max_calls: int = 10_000) -> list[float]:
    """Seconds per call: at least MIN_CALLS, then until ``cell_s`` has passed."""
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < MIN_CALLS or (
        time.perf_counter() - started < cell_s and len(times) < max_calls
    ):
        before = time.perf_counter()
        call()
        times.append(time.perf_counter() - before)
    return times


def load(path: Path) -> torch.jit.ScriptModule:
    return TorchScriptFormat().load(path, torch.device("cpu"))


def measure_batches(
    name: str,
    model: torch.jit.ScriptModule,
    config: ModelConfig,
    sizes: tuple[int, ...],
    cell_s: float,
    rounds: int = ROUNDS,
) -> list[BatchCell]:
    """Every size in ``sizes``, in ``rounds`` round-robin rounds of ``cell_s / rounds`` each;
    a size's figure is its best round's median. Once one batch alone takes longer than
    ``cell_s``, larger sizes are left out (the cap by time: they would be no more informative).
    """
    shape = (3, config.input.height, config.input.width)
    with torch.inference_mode():
        for size in sizes:  # warm-up pass first: the profiling executor specialises per shape
            for _ in range(WARMUP_CALLS):
                model(torch.rand(size, *shape))
        batches = {size: torch.rand(size, *shape) for size in sizes}
        times: dict[int, list[list[float]]] = {size: [] for size in sizes}
        active = list(sizes)
        for _ in range(rounds):
            for size in list(active):
                calls = time_calls(lambda b=batches[size]: model(b), cell_s / rounds)
                times[size].append(calls)
                if min(calls) > cell_s:
                    active = [s for s in active if s <= size]
    return [
        BatchCell(
            name,
            size,
            sum(map(len, runs)),
            best_median(runs) * 1000,
            percentile([t for run in runs for t in run], 0.9) * 1000,
        )
        for size, runs in times.items()
        if runs
    ]


def best_median(rounds: list[list[float]]) -> float:
    """The lowest round median: a neighbour's burst can only slow a round down, never speed it
    up, so the quietest round is the closest to what the hardware does."""
    return min(statistics.median(run) for run in rounds)


def measure_single_image(
    name: str,
    model: torch.jit.ScriptModule,
    config: ModelConfig,
    jpeg: bytes,
    cell_s: float,
    rounds: int = ROUNDS,
) -> SingleImage:
    """Decode + pre-process + batch-1 forward of one JPEG, best round's medians."""
    runs: list[tuple[list[float], list[float], list[float]]] = []

    def one(decode: list[float], forward: list[float], total: list[float]) -> None:
        started = time.perf_counter()
        tensor, _ = load_for_model(jpeg, config.input, max_pixels=MAX_PIXELS)
        decoded = time.perf_counter()
        with torch.inference_mode():
            model(tensor.unsqueeze(0))
        finished = time.perf_counter()
        decode.append(decoded - started)
        forward.append(finished - decoded)
        total.append(finished - started)

    for _ in range(WARMUP_CALLS):
        one([], [], [])
    for _ in range(rounds):
        run: tuple[list[float], list[float], list[float]] = ([], [], [])
        time_calls(lambda r=run: one(*r), cell_s / rounds)
        runs.append(run)
    decode, forward, total = min(runs, key=lambda r: statistics.median(r[2]))
    every_total = [t for r in runs for t in r[2]]
    return SingleImage(
        name,
        len(every_total),
        statistics.median(decode) * 1000,
        statistics.median(forward) * 1000,
        statistics.median(total) * 1000,
        percentile(every_total, 0.9) * 1000,
    )


def best(cells: list[BatchCell], model: str) -> BatchCell:
    """The batch size with the highest throughput: the ceiling the service is compared with."""
    return max((c for c in cells if c.model == model), key=lambda c: c.images_per_s)
