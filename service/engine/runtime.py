"""One model version on one device, warm, running a batch: Triton's "backend" for attnserve.

A runtime owns exactly one worker thread. Every forward pass of this model version runs there,
never on the event loop, so the loop stays free to accept, queue and answer requests while the
model computes, and batches of the same version never compete for the device. The batcher
decides *what* runs (which items, how many); the runtime knows *how*, including, in
:func:`run_items`, how to keep one bad item or an out-of-memory batch from failing the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from typing import Protocol

import torch

from models.repository.config import ModelConfig
from models.repository.formats import ServableModel
from service.engine.cores import CoreShare
from service.engine.result import Result
from service.engine.statistics import Execution
from service.errors import InferenceFailed, NonFiniteOutput, ServiceError
from service.settings import parse_device
from service.thread_names import INFERENCE, name_os_thread

BARRIER_TIMEOUT_S = 120.0  # warming every instance thread: a stuck one fails the load


class ModelRuntime:
    """Runs all inference for this model version on one worker thread, never on the event
    loop: ``executor`` (one thread; ``owns_executor=False`` when it is shared with other
    versions, see :func:`inference_thread`), or else a thread of its own. With several
    instances the executor has one thread per instance and ``cores`` shares the CPU threads
    among the passes running at once."""

    def __init__(
        self,
        name: str,
        version: int,
        config: ModelConfig,
        model: ServableModel,
        device: torch.device,
        executor: ThreadPoolExecutor | None = None,
        owns_executor: bool = True,
        cores: CoreShare | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.config = config
        self.model = model
        self.device = device
        self._owns_executor = executor is None or owns_executor
        self.executor = executor or inference_thread(f"attnserve-{name}-v{version}")
        self.cores = cores

    def run_batch(
        self, batch: torch.Tensor, with_maps: bool
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run ``batch`` (B, 3, H, W) float32 on CPU; called in the worker thread.

        Outputs come back on the CPU, floating point as float32, and as ordinary tensors (not
        inference tensors), so the encoders downstream may modify them in place. Without maps
        the second value is ``{}``: the cheaper ``forward`` never computes them.
        """
        # A pinned host tensor can be copied asynchronously; the stream orders it before use.
        non_blocking = self.device.type == "cuda" and batch.is_pinned()
        inputs = batch.to(self.device, non_blocking=non_blocking)
        with self.cores.claim() if self.cores else nullcontext(), torch.inference_mode():
            if with_maps:
                logits, maps = self.model.forward_with_maps(inputs)
            else:
                logits, maps = self.model(inputs), {}
        return _to_host(logits), {key: _to_host(value) for key, value in maps.items()}

    def warm_up(self, batch_sizes: Sequence[int]) -> None:
        """Run each batch size once with and once without maps, in the calling thread.

        TorchScript's profiling executor specialises and optimises a graph on its first calls
        (and CUDA initialises kernels and workspaces lazily); doing that here keeps those
        seconds out of the first real requests' latency.
        """
        spec = self.config.input
        for size in batch_sizes:
            zeros = torch.zeros(size, 3, spec.height, spec.width)
            for with_maps in (False, True):
                self.run_batch(zeros, with_maps)

    def warm_every_thread(self, threads: int) -> list[Future[None]]:
        """One batch-1 pass on each of the executor's ``threads`` threads (model instances):
        a barrier holds every task until each has a thread of its own, so every thread's
        OpenMP team exists before the first request (the graph is already optimised)."""
        barrier = threading.Barrier(threads, timeout=BARRIER_TIMEOUT_S)

        def warm() -> None:
            barrier.wait()
            self.warm_up([1])

        return [self.executor.submit(warm) for _ in range(threads)]

    def close(self) -> None:
        """Stop its own worker thread after the work already handed to it has finished (a
        shared thread belongs to whoever shared it)."""
        if self._owns_executor:
            self.executor.shutdown(wait=True)


def inference_thread(name: str, torch_threads: int | None = None) -> ThreadPoolExecutor:
    """One thread for forward passes. On the CPU the service gives every version of a model
    with one instance the same one: the cores are shared anyway, and torch's OpenMP keeps one
    team of threads per calling thread. With more OpenMP threads than cores, libgomp stops
    its threads spinning between parallel regions, and each of the hundreds of small regions
    of a forward pass then pays a futex wake-up: se_resnet_sagan at batch 1 took 6.7-11 ms
    instead of 4.2 ms (2 cores) once a second thread had run the model. For the same reason
    a version is loaded and warmed up on the thread that will serve it. ``torch_threads``:
    the thread's own OpenMP team size, set when it starts (torch gives a new thread the count
    last set by any thread, and a :class:`~service.engine.cores.CoreShare` sets smaller
    ones). The operating system sees it as ``attn-infer`` (service/thread_names.py)."""
    return ThreadPoolExecutor(1, name, initializer=_start_inference, initargs=(torch_threads,))


def _start_inference(torch_threads: int | None) -> None:
    name_os_thread(INFERENCE)
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)


def default_instances(device: torch.device, torch_threads: int) -> int:
    """A model's instance count when neither config.json nor the settings name one: on the CPU
    2 once there are 2 threads to share, so that a second batch computes while the first
    finishes instead of both cores meeting at every barrier of one team (se_resnet_sagan on 2
    cores: 1.19 x the saturated throughput of 1 x 2 threads at the same concurrency-1 latency,
    see the README's Instances); on a GPU 1, as Triton's PyTorch backend, since one stream
    already keeps the device busy and more would only compete for its memory."""
    return 2 if device.type == "cpu" and torch_threads >= 2 else 1


def instance_threads(name: str, instances: int) -> ThreadPoolExecutor:
    """The threads of a model with ``instances`` > 1 (Triton's instance_group count): up to
    that many forward passes run at once, each in its own thread, with the CPU threads shared
    among them by a :class:`~service.engine.cores.CoreShare`. On 2 cores, two passes of one
    thread each replace one team of 2 under load: no barrier between the two cores inside a
    forward pass, and a preempted thread stalls only its own batch."""
    return ThreadPoolExecutor(instances, name, initializer=_start_inference, initargs=(None,))


def _to_host(tensor: torch.Tensor) -> torch.Tensor:
    """CPU, float32 for floating point (a half-precision model still answers in float32);
    integer outputs such as class-index masks keep their dtype."""
    dtype = torch.float32 if tensor.is_floating_point() else tensor.dtype
    host = tensor.to("cpu", dtype)
    # Already on the CPU in the right dtype, ``to`` is a no-op that keeps the inference tensor.
    return host.clone() if host.is_inference() else host


class BatchRunner(Protocol):
    def run_batch(
        self, batch: torch.Tensor, with_maps: bool
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


def run_items(
    runner: BatchRunner,
    tensors: list[torch.Tensor],
    with_maps: bool,
    runs: list[Execution],
) -> list[Result | ServiceError]:
    """Stack, run and split per item, in the worker thread, so that one bad item never fails
    its batch-mates: out of memory halves the batch (recursively), any other error re-runs each
    item alone, and only an item that fails alone gets an error. Every forward pass that
    succeeds appends its :class:`Execution` (size and the time of each stage, see
    :mod:`service.engine.statistics`) to ``runs``, and each of its results refers to it."""
    started = time.monotonic()
    try:
        batch = torch.stack(tensors)
        stacked = time.monotonic()
        logits, maps = runner.run_batch(batch, with_maps)
        computed = time.monotonic()
        finite = _finite_per_item([logits, *maps.values()])
        parts = [
            (logits[i], {key: value[i] for key, value in maps.items()}) if finite[i] else None
            for i in range(len(tensors))
        ]
    except torch.cuda.OutOfMemoryError as error:  # before Exception: it is a RuntimeError
        if len(tensors) == 1:
            return [InferenceFailed(f"out of memory on one image: {error}")]
        half = len(tensors) // 2
        first = run_items(runner, tensors[:half], with_maps, runs)
        return first + run_items(runner, tensors[half:], with_maps, runs)
    except Exception as error:
        if len(tensors) == 1:
            message = f"model raised {type(error).__name__}: {error}"
            return [InferenceFailed(message)]
        return [out for tensor in tensors for out in run_items(runner, [tensor], with_maps, runs)]
    now = time.monotonic()
    execution = Execution(len(tensors), stacked - started, computed - stacked, now - computed)
    runs.append(execution)
    return [
        Result(*part, batch_size=len(tensors), execution=execution)
        if part is not None
        else NonFiniteOutput(NON_FINITE_MESSAGE)
        for part in parts
    ]


NON_FINITE_MESSAGE = (
    "the model's output for this input contains NaN or Inf: its values are far outside what "
    "the model computes on (a pre-processed image is within about -3 to 3); send such values"
)


def _finite_per_item(outputs: list[torch.Tensor]) -> list[bool]:
    """Per item of the batch, whether every floating-point output is finite: a finite input
    can still overflow a model, and a NaN must reach the client as its own 4xx rather than
    fail the encoders as a 500 (a JSON body cannot even carry it)."""
    finite = torch.ones(outputs[0].shape[0], dtype=torch.bool)
    for output in outputs:
        if output.is_floating_point():
            finite &= torch.isfinite(output).reshape(output.shape[0], -1).all(dim=1)
    return finite.tolist()


def warm_up_sizes(max_batch_size: int) -> list[int]:
    """Powers of two up to ``max_batch_size``, plus ``max_batch_size`` itself (12 -> 1, 2, 4, 8,
    12): the sizes the batcher produces most, without warming every size up to the maximum."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1, not {max_batch_size}")
    sizes = []
    size = 1
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    sizes.append(max_batch_size)
    return sizes


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when there is one; an explicit CUDA device that this machine lacks is
    a configuration error, reported at startup rather than on the first request. The name's
    syntax is :func:`service.settings.parse_device`'s."""
    kind, index = parse_device(name)
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} requested but CUDA is not available "
            f"(torch {torch.__version__} sees no GPU); use --device cpu or auto"
        )
    index = torch.cuda.current_device() if index is None else index
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(
            f"device {name!r} does not exist: this machine has {count} CUDA device(s), "
            f"cuda:0 to cuda:{count - 1}"
        )
    return torch.device("cuda", index)
