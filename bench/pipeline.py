"""Part 1's true limit: the whole pipeline in-process, with no server in between.

A server must decode and pre-process every JPEG, run the forward pass and pick the top-k, so
the forward-only figure of :mod:`bench.limit` is a ceiling no server can reach on the same
cores. This measures what a program that does all of that, and nothing else, achieves on the
same JPEG and the same thread budget, in each threading layout:

- ``1 x N threads``: one thread decodes a batch, then runs it with a team of all N threads;
- ``N x 1 thread``: N threads each decode and run batches of their own, one torch thread each
  (the layout of N model instances).

The best layout is the limit the service's saturated throughput is divided by (issue 12: the
service's share of it should be 97 %).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch

from bench.limit import MAX_PIXELS, ROUNDS, WARMUP_CALLS
from models.repository.config import ModelConfig
from service.imaging import load_for_model

TOP_K = 5


@dataclass(frozen=True)
class PipelineCell:
    layout: str
    workers: int
    threads_per_worker: int
    batch: int
    images_per_s: float  # the best round's


def one_batch(model: torch.jit.ScriptModule, config: ModelConfig, jpeg: bytes, batch: int) -> None:
    """Decode and pre-process ``batch`` copies of the JPEG, stack, forward, top-k."""
    tensors = [load_for_model(jpeg, config.input, max_pixels=MAX_PIXELS)[0] for _ in range(batch)]
    with torch.inference_mode():
        logits = model(torch.stack(tensors))
        torch.topk(torch.softmax(logits, dim=1), min(TOP_K, logits.shape[1]))


def images_per_s(
    model: torch.jit.ScriptModule,
    config: ModelConfig,
    jpeg: bytes,
    batch: int,
    workers: int,
    threads_per_worker: int,
    seconds: float,
) -> float:
    """``workers`` threads, each with a torch team of ``threads_per_worker``, running
    :func:`one_batch` for about ``seconds``: images per second, summed over the workers, each
    counted up to its last finished batch (a batch cut off by the window would bias it low)."""
    finished: list[tuple[int, float]] = [(0, 0.0)] * workers  # images, seconds from the start
    start = threading.Barrier(workers)

    def work(index: int) -> None:
        torch.set_num_threads(threads_per_worker)  # this thread's own OpenMP team
        for _ in range(WARMUP_CALLS):
            one_batch(model, config, jpeg, batch)
        start.wait()
        began = time.perf_counter()
        images = 0
        while time.perf_counter() - began < seconds or images == 0:
            one_batch(model, config, jpeg, batch)
            images += batch
            finished[index] = (images, time.perf_counter() - began)

    main_threads = torch.get_num_threads()
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
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
) -> list[PipelineCell]:
    """Each layout of ``threads`` in ``rounds`` round-robin rounds; a layout's figure is its
    best round (a neighbour's burst only ever slows a round down)."""
    layouts = {f"1 x {threads} threads": (1, threads)}
    if threads > 1:
        layouts[f"{threads} x 1 thread"] = (threads, 1)
    figures: dict[str, list[float]] = {name: [] for name in layouts}
    for _ in range(rounds):
        for name, (workers, per_worker) in layouts.items():
            seconds = cell_s / rounds
            figures[name].append(
                images_per_s(model, config, jpeg, batch, workers, per_worker, seconds)
            )
    return [
        PipelineCell(name, workers, per_worker, batch, max(figures[name]))
        for name, (workers, per_worker) in layouts.items()
    ]


def best_layout(cells: list[PipelineCell]) -> PipelineCell:
    return max(cells, key=lambda cell: cell.images_per_s)
