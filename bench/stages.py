"""Part 5: where the server's time goes, from its own Prometheus histograms, and where its
CPU goes, from its threads' CPU time.

A probe scrapes ``/metrics`` (and reads the server's CPU time, per thread name) at the start
and end of a load run's window; the mean of a stage over the window is d(_sum) / d(_count),
and a role's CPU per request is its threads' d(CPU) / d(requests).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from bench.client import Connection, build_request
from bench.machine import thread_cpu_seconds, total_cpu_seconds
from service.thread_names import ROLES

log = logging.getLogger(__name__)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass(frozen=True)
class Snapshot:
    cpu_s: float
    samples: Samples
    threads: dict[str, float] = field(default_factory=dict)  # CPU seconds per thread name

    def total(self, name: str, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


class ServerProbe:
    """Called by the load generator at the window's edges; costs one small GET on a fresh
    connection (a kept one would outlive the server's keep-alive timeout between the edges)."""

    def __init__(self, port: int, pids: list[int], scrape: bool) -> None:
        self.port = port
        self.raw = build_request("GET", "/metrics")
        self.pids = pids
        self.scrape = scrape

    async def __call__(self) -> Snapshot:
        cpu = total_cpu_seconds(self.pids)
        if not self.scrape:
            return Snapshot(cpu, {})
        threads = thread_cpu_seconds(self.pids)
        connection = Connection(self.port)
        try:
            status, body = await connection.exchange(self.raw)
        except (OSError, asyncio.IncompleteReadError) as error:
            log.warning("scraping /metrics failed (%s): no stage breakdown for this run", error)
            return Snapshot(cpu, {})
        finally:
            connection.close()
        return Snapshot(cpu, parse(body.decode()) if status == 200 else {}, threads)


@dataclass(frozen=True)
class Stages:
    """Means over one window, in milliseconds (batch size in images)."""

    preprocess_ms: float
    queue_ms: float
    inference_batch_ms: float
    batch_size: float
    inference_image_ms: float
    server_total_ms: float
    server_other_ms: float  # routing, post-processing and encoding, middleware
    client_ms: float  # the client's mean latency
    outside_ms: float  # client - server: HTTP parsing and transfer, the event loop, the client
    # the server's CPU per request (core-ms) by thread role, and "other": the event loop
    # (HTTP, routing, batching, encoding JSON) and any thread without a role
    cpu_ms: dict[str, float] = field(default_factory=dict)

    FIELDS = (
        "preprocess_ms",
        "queue_ms",
        "inference_batch_ms",
        "batch_size",
        "inference_image_ms",
        "server_total_ms",
        "server_other_ms",
        "outside_ms",
        "client_ms",
    )


def _mean(first: Snapshot, last: Snapshot, metric: str, **labels: str) -> float:
    count = last.total(f"{metric}_count", **labels) - first.total(f"{metric}_count", **labels)
    total = last.total(f"{metric}_sum", **labels) - first.total(f"{metric}_sum", **labels)
    return total / count if count > 0 else math.nan


def stages_between(
    first: Snapshot, last: Snapshot, model: str, endpoint: str, client_mean_ms: float
) -> Stages:
    ms = 1000.0
    preprocess = _mean(first, last, "attnserve_preprocess_duration_seconds", model=model) * ms
    queue = _mean(first, last, "attnserve_queue_duration_seconds", model=model) * ms
    batch_ms = _mean(first, last, "attnserve_inference_duration_seconds", model=model) * ms
    batch_size = _mean(first, last, "attnserve_batch_size", model=model)
    server = (
        _mean(first, last, "attnserve_request_duration_seconds", model=model, endpoint=endpoint)
        * ms
    )
    # An image waits for its whole batch: its share of the server's time is the batch's time.
    other = server - preprocess - queue - batch_ms
    labels = {"model": model, "endpoint": endpoint}
    name = "attnserve_request_duration_seconds_count"
    requests = last.total(name, **labels) - first.total(name, **labels)
    return Stages(
        preprocess,
        queue,
        batch_ms,
        batch_size,
        batch_ms / batch_size,
        server,
        other,
        client_mean_ms,
        client_mean_ms - server,
        cpu_per_request(first, last, requests),
    )


def cpu_per_request(first: Snapshot, last: Snapshot, requests: float) -> dict[str, float]:
    """Core-ms per request of each thread role over the window, the rest as "other"."""
    if requests <= 0 or not last.threads:
        return {}
    used = {name: last.threads[name] - first.threads.get(name, 0.0) for name in last.threads}
    shares = {role: used.pop(role, 0.0) for role in ROLES}
    shares["other"] = sum(used.values())
    return {role: 1000 * seconds / requests for role, seconds in shares.items()}
