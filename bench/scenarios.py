"""Parts 2-4: the requests, and load runs against a server, repeated and summarised.

Repeats run round-robin (every cell once, then every cell again), so a burst from a neighbour
on a shared machine lands on different cells rather than on every repeat of one cell; each
figure is then the median over the repeats, with the spread of throughput beside it.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.grpc_client import GrpcRequest, infer_bytes_request
from bench.loadgen import EngineMs, HttpRequest, RunResult, closed_loop, open_loop
from bench.servers import ServerProcess
from bench.stages import ServerProbe, Stages, stages_between
from bench.stats import median_of


@dataclass(frozen=True)
class Scenario:
    name: str  # as shown in the tables
    model: str
    endpoint: str  # the metric's endpoint label: predict, v2_infer or grpc_infer
    request: HttpRequest | GrpcRequest
    engine: EngineMs | None = None  # reads each answer's engine time, where a part needs it


BOUNDARY = "attnserve-bench-boundary"


def upload(path: str, jpeg: bytes) -> HttpRequest:
    """``POST path`` with the JPEG as the one ``file`` part of a multipart/form-data body: how
    a browser or ``curl -F file=@image.jpg`` sends an image, and how issue 12 measured every
    server (each peer's app reads that part)."""
    body = b"".join([
        f"--{BOUNDARY}\r\n".encode(),
        b'Content-Disposition: form-data; name="file"; filename="image.jpg"\r\n',
        b"Content-Type: image/jpeg\r\n\r\n",
        jpeg,
        f"\r\n--{BOUNDARY}--\r\n".encode(),
    ])  # fmt: skip
    headers = (("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),)
    return HttpRequest("POST", path, body, headers)


def predict(
    model: str, jpeg: bytes, query: str = "", name: str = "/predict", engine: bool = False
) -> Scenario:
    """``engine``: read every answer's engine time too (:func:`predict_engine_ms`)."""
    path = f"/predict?model={model}" + (f"&{query}" if query else "")
    request = upload(path, jpeg)
    return Scenario(name, model, "predict", request, predict_engine_ms if engine else None)


def predict_engine_ms(body: bytes) -> float:
    """A /predict answer's time in the engine, by its own timings: its queue wait and its
    batch's forward pass (what a latency target bounds)."""
    timings = json.loads(body)["results"][0]["timings"]
    return timings["queue_ms"] + timings["inference_ms"]


def v2_infer(model: str, jpeg: bytes, binary_output: bool) -> Scenario:
    """One JPEG as a BYTES input in Triton's binary extension (as ``tritonclient`` sends it);
    outputs as JSON numbers or as binary tensors."""
    element = struct.pack("<I", len(jpeg)) + jpeg
    header = {
        "inputs": [
            {
                "name": "image",
                "datatype": "BYTES",
                "shape": [1],
                "parameters": {"binary_data_size": len(element)},
            }
        ],
        "outputs": [{"name": "logits"}, {"name": "probabilities"}],
        "parameters": {"binary_data_output": binary_output},
    }
    header_bytes = json.dumps(header).encode()
    headers = (
        ("Content-Type", "application/octet-stream"),
        ("Inference-Header-Content-Length", str(len(header_bytes))),
    )
    request = HttpRequest("POST", f"/v2/models/{model}/infer", header_bytes + element, headers)
    name = "v2 binary out" if binary_output else "v2 JSON out"
    return Scenario(name, model, "v2_infer", request)


def grpc_infer(model: str, jpeg: bytes, grpc_port: int) -> Scenario:
    """The same JPEG and outputs as :func:`v2_infer`, over gRPC (outputs are always raw)."""
    request = infer_bytes_request(grpc_port, model, jpeg, ["logits", "probabilities"])
    return Scenario("gRPC raw out", model, "grpc_infer", request)


@dataclass
class Cell:
    """One (server, scenario, load) cell: its repeated runs and their stage breakdowns."""

    server: str
    scenario: Scenario
    load: str  # "c=32" or "open 40/s"
    runs: list[RunResult] = field(default_factory=list)
    server_cpu_s: list[float] = field(default_factory=list)
    stages: list[Stages] = field(default_factory=list)

    def median(self, value: Callable[[RunResult], float]) -> float:
        return median_of([value(run) for run in self.runs])

    @property
    def throughput(self) -> float:
        return self.median(lambda r: r.throughput)

    @property
    def throughput_range(self) -> tuple[float, float]:
        values = [r.throughput for r in self.runs]
        return (min(values), max(values)) if values else (math.nan, math.nan)

    def latency_ms(self, q: float) -> float:
        return self.median(lambda r: r.latency_ms(q))

    def engine_latency_ms(self, q: float) -> float:
        return self.median(lambda r: r.engine_latency_ms(q))

    @property
    def errors(self) -> int:
        return sum(r.error_count for r in self.runs)

    def cpu_percent(self, which: str) -> float:
        shares = []
        for run, server_s in zip(self.runs, self.server_cpu_s, strict=True):
            used = run.client_cpu_s if which == "client" else server_s
            shares.append(100 * used / run.window_s)
        return median_of(shares)

    def stage(self, name: str) -> float:
        return median_of([getattr(s, name) for s in self.stages])


@dataclass(frozen=True)
class Load:
    concurrency: int | None = None
    rate: float | None = None

    @property
    def label(self) -> str:
        return f"c={self.concurrency}" if self.concurrency else f"open {self.rate:g}/s"


async def run_once(
    server: ServerProcess,
    scenario: Scenario,
    load: Load,
    duration_s: float,
    warmup_s: float,
    max_requests: int,
    scrape: bool,
) -> tuple[RunResult, float, Stages | None]:
    probe = ServerProbe(server.port, server.pids(), scrape)
    if load.concurrency:
        result = await closed_loop(
            server.port,
            scenario.request,
            load.concurrency,
            duration_s,
            warmup_s,
            max_requests,
            probe,
            scenario.engine,
        )
    else:
        assert load.rate is not None
        result = await open_loop(
            server.port, scenario.request, load.rate, duration_s, warmup_s, max_requests, probe
        )
    first, last = result.probes
    if first is None or last is None:
        return result, math.nan, None
    stages = None
    if scrape and first.samples and last.samples:
        stages = stages_between(
            first, last, scenario.model, scenario.endpoint, result.mean_latency_ms
        )
    return result, last.cpu_s - first.cpu_s, stages


def run_cells(
    server: ServerProcess,
    plan: list[tuple[Scenario, Load, int]],
    duration_s: float,
    warmup_s: float,
    max_requests: int,
    scrape: bool,
    log: Callable[[str], None],
) -> list[Cell]:
    """``plan``: (scenario, load, repeats); repeats are interleaved round-robin."""
    cells = plan_cells(server, plan)
    rounds = max((repeats for _, _, repeats in plan), default=0)
    for round_index in range(rounds):
        for cell, (_, load, repeats) in zip(cells, plan, strict=True):
            if round_index < repeats:
                run_into(cell, server, load, duration_s, warmup_s, max_requests, scrape, log)
    return cells


def plan_cells(server: ServerProcess, plan: list[tuple[Scenario, Load, int]]) -> list[Cell]:
    return [Cell(server.name, scenario, load.label) for scenario, load, _ in plan]


def run_into(
    cell: Cell,
    server: ServerProcess,
    load: Load,
    duration_s: float,
    warmup_s: float,
    max_requests: int,
    scrape: bool,
    log: Callable[[str], None],
) -> None:
    """One run of ``cell``'s scenario at ``load``, added to the cell and logged."""
    scenario = cell.scenario
    result, cpu_s, stages = asyncio.run(
        run_once(server, scenario, load, duration_s, warmup_s, max_requests, scrape)
    )
    cell.runs.append(result)
    cell.server_cpu_s.append(cpu_s)
    if stages is not None:
        cell.stages.append(stages)
    log(
        f"#   {server.name:15} {scenario.name:24} {load.label:12} "
        f"{result.throughput:7.1f} req/s  p50 {result.latency_ms(0.5):7.1f} ms  "
        f"p99 {result.latency_ms(0.99):7.1f} ms  errors {result.error_count}"
    )
