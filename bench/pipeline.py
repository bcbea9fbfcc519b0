"""Part 1's true limit: the whole pipeline in-process, with no server in between.

A server must decode and pre-process every JPEG, run the forward pass and pick the top-k, so
the forward-only figure of :mod:`bench.limit` is a ceiling no server can reach on the same
cores. This measures what a program that does all of that, and nothing else, achieves on the
same JPEG and the same thread budget, in each threading layout:

- ``1 x N threads``: one thread decodes a batch, then runs it with a team of all N threads;
- ``N x 1 thread``: N threads each decode and run batches of their own, one torch thread each;
- ``N x 1 thread, N decode threads``: the same forward threads, fed by a pool of N decode
  threads that decodes each worker's next batch while it computes the current one (the
  service's layout: model instances and the decode pool, without HTTP);
- ``N processes x 1 thread, pinned, N decode threads``: the forward passes in N separate
  processes, pinned to a core each and fed through shared memory
  (:mod:`bench.pipeline_processes`): the peers' layout, without HTTP.

The best layout is the limit the service's saturated throughput is divided by (issue 12: the
service's share of it should be 97 %).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.limit import MAX_PIXELS, ROUNDS, WARMUP_CALLS
from bench.pipeline_processes import forward_top_k, inference_processes
from models.repository.config import ModelConfig
from service.imaging import load_for_model

TOP_K = 5


@dataclass(frozen=True)
class PipelineCell:
    layout: str
    batch: int
    images_per_s: float  # the best round's


def batches(
    decode: Callable[[], torch.Tensor], batch: int, pool: ThreadPoolExecutor | None
) -> Callable[[], list[torch.Tensor]]:
    """A worker's source of batches: decoded by the worker itself, or by ``pool``, which
    decodes the next batch while the worker computes the one it returned."""
    if pool is None:
        return lambda: [decode() for _ in range(batch)]
    ahead: list[Future[torch.Tensor]] = []

    def prefetched() -> list[torch.Tensor]:
        nonlocal ahead
        current = ahead or [pool.submit(decode) for _ in range(batch)]
        ahead = [pool.submit(decode) for _ in range(batch)]
        return [future.result() for future in current]

    return prefetched


def decoder(config: ModelConfig, jpeg: bytes) -> Callable[[], torch.Tensor]:
    """Decode and pre-process ``jpeg`` as the service does, into one image tensor."""
    return lambda: load_for_model(jpeg, config.input, max_pixels=MAX_PIXELS)[0]


def images_per_s(
    model: torch.jit.ScriptModule,
    config: ModelConfig,
    jpeg: bytes,
    batch: int,
    layout: tuple[int, int, int],
    seconds: float,
) -> float:
    """``layout``: (workers, torch threads per worker, decode threads: 0 for none, the workers
    decode their own batches). Each worker runs batches (decode and pre-process every JPEG,
    stack, forward, top-k) for about ``seconds``: images per second, summed over the workers,
    each counted up to its last finished batch (a batch cut off by the window would bias it
    low)."""
    workers, threads_per_worker, decoders = layout
    finished: list[tuple[int, float]] = [(0, 0.0)] * workers  # images, seconds from the start
    start = threading.Barrier(workers)

    decode = decoder(config, jpeg)

    def work(index: int, pool: ThreadPoolExecutor | None) -> None:
        torch.set_num_threads(threads_per_worker)  # this thread's own OpenMP team
        next_batch = batches(decode, batch, pool)
        for _ in range(WARMUP_CALLS):
            forward_top_k(model, torch.stack(next_batch()), TOP_K)
        start.wait()
        began = time.perf_counter()
        images = 0
        while time.perf_counter() - began < seconds or images == 0:
            forward_top_k(model, torch.stack(next_batch()), TOP_K)
            images += batch
            finished[index] = (images, time.perf_counter() - began)

    main_threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(decoders) if decoders else None
    threads = [threading.Thread(target=work, args=(i, pool), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if pool is not None:
        pool.shutdown(wait=True)
    torch.set_num_threads(main_threads)  # a new thread starts with the count set last
    return sum(images / elapsed for images, elapsed in finished)


def measure_pipeline(
    model: torch.jit.ScriptModule,
    config: ModelConfig,
    jpeg: bytes,
    batch: int,
    threads: int,
    cell_s: float,
    rounds: int = ROUNDS,
    model_file: Path | None = None,
) -> list[PipelineCell]:
    """Each layout of ``threads`` in ``rounds`` round-robin rounds; a layout's figure is its
    best round (a neighbour's burst only ever slows a round down). ``model_file`` (the file
    ``model`` was loaded from) adds the process layout, where this process may use a CPU per
    thread; its processes start once and serve every round."""
    with ExitStack() as stack:
        layouts = layout_runs(stack, model, config, jpeg, batch, threads, cell_s / rounds,
                              model_file)  # fmt: skip
        figures: dict[str, list[float]] = {name: [] for name in layouts}
        for _ in range(rounds):
            for name, measure in layouts.items():
                figures[name].append(measure())
    return [PipelineCell(name, batch, max(runs)) for name, runs in figures.items()]


def layout_runs(
    stack: ExitStack,
    model: torch.jit.ScriptModule,
    config: ModelConfig,
    jpeg: bytes,
    batch: int,
    threads: int,
    seconds: float,
    model_file: Path | None = None,
    names: Collection[str] | None = None,
) -> dict[str, Callable[[], float]]:
    """Per layout (only ``names``, when given), a call that measures it for ``seconds`` and
    gives its images/s. The process layout's processes (with ``model_file``) start here and
    stop with ``stack``."""
    runs: dict[str, Callable[[], float]] = {}
    for name, layout in thread_layouts(threads).items():
        if names is None or name in names:
            runs[name] = lambda layout=layout: images_per_s(
                model, config, jpeg, batch, layout, seconds
            )
    name = f"{threads} processes x 1 thread, pinned, {threads} decode threads"
    fits = model_file is not None and 1 < threads <= len(os.sched_getaffinity(0))
    if fits and (names is None or name in names):
        decode = decoder(config, jpeg)
        processes = stack.enter_context(
            inference_processes(model_file, decode, batch, threads, TOP_K)
        )
        runs[name] = lambda: processes.images_per_s(seconds)
    return runs


def thread_layouts(threads: int) -> dict[str, tuple[int, int, int]]:
    """The in-process layouts of ``threads``: (workers, torch threads each, decode threads)."""
    layouts = {f"1 x {threads} threads": (1, threads, 0)}
    if threads > 1:
        layouts[f"{threads} x 1 thread"] = (threads, 1, 0)
        layouts[f"{threads} x 1 thread, {threads} decode threads"] = (threads, 1, threads)
    return layouts


def best_layout(cells: list[PipelineCell]) -> PipelineCell:
    return max(cells, key=lambda cell: cell.images_per_s)
