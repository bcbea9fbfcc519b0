"""Part 1's process layout (issue 12): inference in separate processes, pinned to a core each,
fed through shared memory.

The thread layouts of :mod:`bench.pipeline` run the forward passes in the process that decodes,
so the decode threads, and in a server the event loop, share the interpreter and the caches
with them. Here every inference process owns one core (``sched_setaffinity``) and one torch
thread, and loads the same file the same way (:func:`bench.limit.load`). The parent decodes
with a pool of decode threads straight into two shared-memory batch slots per process, so the
next batch is decoded while the current one computes, and only a slot number crosses the
pipe. This is how TorchServe, mosec and LitServe split a server, without their HTTP.

The processes are spawned, not forked: the parent has already run OpenMP regions, and a forked
OpenMP runtime can hang.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import torch

from bench.limit import WARMUP_CALLS, load
from service.malloc import retain_freed_memory

SLOTS = 2  # per process: one computing, one being filled
READY_TIMEOUT_S = 120.0


def forward_top_k(model: torch.jit.ScriptModule, batch: torch.Tensor, top_k: int) -> None:
    """The compute of one pipeline batch, in every layout: forward, softmax, top-k."""
    with torch.inference_mode():
        logits = model(batch)
        torch.topk(torch.softmax(logits, dim=1), min(top_k, logits.shape[1]))


def serve(model_file: str, slots: torch.Tensor, pipe: Connection, cpu: int, top_k: int) -> None:
    """An inference process: pinned to ``cpu``, one torch thread; computes the slot it is sent
    and answers with the slot and how many images it finished since its first measured batch
    (the parent's ``None`` starts the count over), until it is sent ``-1``."""
    os.sched_setaffinity(0, {cpu})
    retain_freed_memory()  # as the bench process and the service do (service/malloc.py)
    torch.set_num_threads(1)
    model = load(Path(model_file))
    for _ in range(WARMUP_CALLS):
        forward_top_k(model, slots[0], top_k)
    pipe.send("ready")
    images, began = 0, time.perf_counter()
    while (message := pipe.recv()) != -1:
        if message is None:
            images, began = 0, time.perf_counter()
            continue
        forward_top_k(model, slots[message], top_k)
        images += slots.shape[1]
        pipe.send((message, images, time.perf_counter() - began))


class InferenceProcesses:
    """One inference process per CPU of ``cpus``, each with :data:`SLOTS` shared batch slots,
    and ``decoders`` decode threads in this process that fill them."""

    def __init__(
        self,
        model_file: Path,
        decode: Callable[[], torch.Tensor],
        batch: int,
        cpus: list[int],
        decoders: int,
        top_k: int,
    ) -> None:
        self.decode = decode
        sample = decode()
        self.slots = [torch.zeros((SLOTS, batch, *sample.shape)).share_memory_() for _ in cpus]
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes = []
        for cpu, slots in zip(cpus, self.slots, strict=True):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=serve, args=(str(model_file), slots, theirs, cpu, top_k), daemon=True
            )
            process.start()
            theirs.close()
            self.pipes.append(ours)
            self.processes.append(process)
        self.pool = ThreadPoolExecutor(decoders)
        for pipe in self.pipes:
            if not pipe.poll(READY_TIMEOUT_S) or self.answer(pipe) != "ready":
                self.close()
                raise RuntimeError("an inference process did not start; see its traceback above")

    @staticmethod
    def answer(pipe: Connection) -> object:
        try:
            return pipe.recv()
        except EOFError:  # the process died
            return None

    def fill(self, slots: torch.Tensor, slot: int) -> None:
        """Decode one batch into ``slots[slot]``, an image per decode thread at a time."""
        targets = slots[slot]
        for index, image in enumerate(self.pool.map(lambda _: self.decode(), range(len(targets)))):
            targets[index].copy_(image)

    def feed(self, index: int, seconds: float, finished: list[tuple[int, float]]) -> None:
        """Keep process ``index`` busy for about ``seconds``; its count up to its last batch."""
        pipe, slots = self.pipes[index], self.slots[index]
        pipe.send(None)
        for slot in range(SLOTS):
            self.fill(slots, slot)
            pipe.send(slot)
        outstanding = SLOTS
        while outstanding:
            slot, images, elapsed = pipe.recv()
            outstanding -= 1
            finished[index] = (images, elapsed)
            if elapsed < seconds:
                self.fill(slots, slot)
                pipe.send(slot)
                outstanding += 1

    def images_per_s(self, seconds: float) -> float:
        finished: list[tuple[int, float]] = [(0, 1.0)] * len(self.pipes)
        feeders = [
            threading.Thread(target=self.feed, args=(index, seconds, finished), daemon=True)
            for index in range(len(self.pipes))
        ]
        for feeder in feeders:
            feeder.start()
        for feeder in feeders:
            feeder.join()
        return sum(images / elapsed for images, elapsed in finished)

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):  # a process that died has closed its end
                pipe.send(-1)
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        self.pool.shutdown(wait=True)


@contextmanager
def inference_processes(
    model_file: Path,
    decode: Callable[[], torch.Tensor],
    batch: int,
    processes: int,
    top_k: int,
) -> Iterator[InferenceProcesses]:
    """``processes`` pinned inference processes (one per allowed CPU, the first ones) fed by as
    many decode threads."""
    cpus = sorted(os.sched_getaffinity(0))[:processes]
    layout = InferenceProcesses(model_file, decode, batch, cpus, processes, top_k)
    try:
        yield layout
    finally:
        layout.close()
