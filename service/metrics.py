"""Prometheus metrics. The names are fixed: dashboards and alerts depend on them.

Each app owns its own ``CollectorRegistry`` (several apps can live in one test process). One
process serves one container; scale out with replicas, each scraped on its own ``/metrics``
(no multiprocess mode: attnserve runs a single worker process by design, since its batcher
needs every request of a model in one queue).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: 0.5 ms to 10 s, roughly x2 steps: millisecond latencies resolved, slow tails still bucketed.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
    0.75, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256)
#: A request that named no served model (404, or 503 while loading) is counted under its
#: status with an empty model label, which Prometheus stores as no label at all: "unknown"
#: would become a model in every dashboard's model picker.
UNKNOWN_MODEL = ""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "attnserve_requests",
            "Requests answered, by model, endpoint and HTTP status.",
            ["model", "endpoint", "status"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "attnserve_request_duration_seconds",
            "Time from request arrival to response, per image request.",
            ["model", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_duration = Histogram(
            "attnserve_queue_duration_seconds",
            "Time an image waited in the batcher's queue before its batch started.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.preprocess_duration = Histogram(
            "attnserve_preprocess_duration_seconds",
            "Decode and pre-processing time per image.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference_duration = Histogram(
            "attnserve_inference_duration_seconds",
            "Compute time per batch (stack, forward, split).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "attnserve_batch_size",
            "Images per executed batch.",
            ["model"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "attnserve_queue_depth", "Images waiting in the queue.", ["model"], registry=registry
        )
        self.inflight = Gauge(
            "attnserve_inflight_requests", "HTTP requests being served.", registry=registry
        )
        self.decode_backlog = Gauge(
            "attnserve_decode_backlog",
            "Images handed to the decode pool and not decoded yet, abandoned ones included.",
            registry=registry,
        )
        self.model_ready = Gauge(
            "attnserve_model_ready",
            "1 when the model version is loaded and warm, else 0.",
            ["model", "version"],
            registry=registry,
        )
        self.expired = Counter(
            "attnserve_requests_expired",
            "Images whose deadline passed while queued (never computed).",
            ["model"],
            registry=registry,
        )
        self.dropped = Counter(
            "attnserve_requests_dropped",
            "Images whose client disconnected before compute (never computed).",
            ["model"],
            registry=registry,
        )

        self.batch_cost = Gauge(
            "attnserve_batch_cost_seconds",
            "Fitted forward-pass time t(n) = slope * n + intercept (target_latency_ms models).",
            ["model", "maps", "term"],
            registry=registry,
        )
        self.batch_size_cap = Gauge(
            "attnserve_batch_size_cap",
            "Largest batch target_latency_ms allows now (target_latency_ms models).",
            ["model", "maps"],
            registry=registry,
        )
        self.torch_threads = Gauge(
            "attnserve_torch_threads",
            "torch intra-op threads: ATTNSERVE_NUM_THREADS, else the CPUs of the cgroup quota "
            "and affinity mask.",
            registry=registry,
        )

    def observer(self, model: str, with_maps: bool = False) -> BatcherMetrics:
        return BatcherMetrics(self, model, with_maps)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class BatcherMetrics:
    """One batcher's observer hooks, recorded under its model's label. A model has several
    batchers (with and without maps, per version), so the depth gauge moves by deltas."""

    def __init__(self, metrics: Metrics, model: str, with_maps: bool) -> None:
        self._last_depth = 0
        self._depth = metrics.queue_depth.labels(model)
        self._queue = metrics.queue_duration.labels(model)
        self._inference = metrics.inference_duration.labels(model)
        self._batch = metrics.batch_size.labels(model)
        self._expired = metrics.expired.labels(model)
        self._dropped = metrics.dropped.labels(model)
        # labelled on first use: only a model with target_latency_ms has these series
        self._metrics, self._labels = metrics, (model, str(with_maps).lower())

    def queue_depth(self, depth: int) -> None:
        self._depth.inc(depth - self._last_depth)
        self._last_depth = depth

    def dequeued(self, queue_s: float) -> None:
        self._queue.observe(queue_s)

    def batch(self, size: int, inference_s: float) -> None:
        self._batch.observe(size)
        self._inference.observe(inference_s)

    def expired(self) -> None:
        self._expired.inc()

    def dropped(self) -> None:
        self._dropped.inc()

    def sizing(self, slope_s: float, intercept_s: float, cap: int) -> None:
        self._metrics.batch_cost.labels(*self._labels, "slope").set(slope_s)
        self._metrics.batch_cost.labels(*self._labels, "intercept").set(intercept_s)
        self._metrics.batch_size_cap.labels(*self._labels).set(cap)
