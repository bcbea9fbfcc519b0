"""``docker compose up`` for real (issue 11): the images build from local bases, the stack runs,
the healthcheck means ready, real images get right answers, Prometheus scrapes, locust loads it
without a failure, every dashboard query and recording rule returns data, an alert fires when
forced, and two replicas behind the balancer are both discovered, both served and aggregated.

Each check is also run on a deliberately broken copy (a wrong scrape target, a dashboard query
naming a metric that does not exist, a healthcheck on the liveness path), which it must reject.
Traffic goes only to 127.0.0.1 and the test's own containers; the stack always ends with
``docker compose down -v``. Skipped, saying why, only where no Docker engine answers."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as triton

from models.demo.shapes import generate_batch
from tests.docker import prometheus_api as prom
from tests.docker import tools
from tests.docker.broken import broken_copy
from tests.docker.dashboard import expressions
from tests.docker.live import CLASSIFIER, SEGMENTER, Live, live_stack, predict, predict_images
from tests.service.images import encode

pytestmark = pytest.mark.slow

TARGET_TIMEOUT_S = 90.0
BROKEN_TARGET_TIMEOUT_S = 20.0
LOCUST_TIMEOUT_S = 240
ALERT_TIMEOUT_S = 90.0
SCALE_TIMEOUT_S = 120.0
GRPC_READY_TIMEOUT_S = 60.0
BURST = 10
P99_PANEL, RATIO_PANEL = "4/A", "3/A"
LOCUST = ["--profile", "loadtest", "run", "--rm", "-T", "loadtest"]
RECORD = re.compile(r"^\s*- record:", re.MULTILINE)
CONDITIONAL = re.compile(r"attnserve_batch_(size_cap|cost_seconds)")
PER_REPLICA_SERIES = "count by (instance) (attnserve_request_duration_seconds_bucket)"


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Live]:
    started = time.monotonic()
    with live_stack(tmp_path_factory.mktemp("compose-live")) as stack:
        timings = ", ".join(f"{key} {value:.0f}" for key, value in stack.timings.items())
        report(request, f"compose live: {timings}")
        yield stack
    report(request, f"compose live: the whole test took {time.monotonic() - started:.0f} s")


def report(request: pytest.FixtureRequest, line: str) -> None:
    """A line on the terminal even while pytest captures output: CI prints the measurements."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        request.config.pluginmanager.get_plugin("terminalreporter").write_line(line)


@pytest.fixture(scope="module")
def prometheus(live: Live) -> str:
    url = live.url("prometheus")
    prom.wait_for_targets_up(url, "attnserve", 1, TARGET_TIMEOUT_S)
    return url


def test_healthcheck_means_ready(live: Live) -> None:
    """While the models load, /healthz is already 200: only a readiness probe keeps the
    container "starting". The broken copy (compose.yaml probing /healthz) passes too early."""
    assert live.while_loading, "the models loaded before the healthchecks could be probed"
    assert live.while_loading["compose"] != 0
    assert live.while_loading["image"] != 0
    assert live.while_loading["broken-copy"] == 0, "the broken copy must pass while loading"
    assert live.once_ready == {"compose": 0, "image": 0, "broken-copy": 0}
    assert live.timings["first_prediction_s"] < 180


def test_predict_and_v2_infer_answer_real_images(live: Live) -> None:
    images = predict_images(12)
    right = 0
    for image, label in images:
        response = predict(live.url(), image, top_k="1")
        assert response.status_code == 200, response.text
        right += response.json()["results"][0]["predictions"][0]["label"] == label
    assert right >= 10, f"{right} of {len(images)} classified right"

    pictures, _, masks = generate_batch(321, 2, 64, max_shapes=2)
    client = triton.InferenceServerClient(url=live.url().removeprefix("http://"))
    request = triton.InferInput("image", [2], "BYTES")
    request.set_data_from_numpy(np.array([encode(p) for p in pictures], dtype=object))
    result = client.infer(SEGMENTER, [request], outputs=[triton.InferRequestedOutput("mask")])
    mask = result.as_numpy("mask")
    assert mask.shape == (2, 64, 64)
    assert float((mask == masks).mean()) > 0.9


def wait_grpc_ready(live: Live, service: str, client: grpcclient.InferenceServerClient) -> None:
    """Bounded: the balancer marks a replica up only after its first passing check."""
    deadline = time.monotonic() + GRPC_READY_TIMEOUT_S
    while True:
        try:
            answer: object = client.is_server_ready()
        except grpcclient.InferenceServerException as error:
            answer = error
        if answer is True:
            return
        assert time.monotonic() < deadline, f"{service}: {answer}\n{live.stack.logs(service)}"
        time.sleep(1.0)


def test_grpc_answers_directly_and_through_the_balancer(live: Live) -> None:
    """The published gRPC port, and the balancer's HTTP/2 frontend in front of it."""
    pictures, _, masks = generate_batch(322, 2, 64, max_shapes=2)
    request = grpcclient.InferInput("image", [2], "BYTES")
    request.set_data_from_numpy(np.array([encode(p) for p in pictures], dtype=object))
    for service in ("attnserve", "balancer"):
        client = grpcclient.InferenceServerClient(live.stack.grpc_address(service))
        wait_grpc_ready(live, service, client)
        result = client.infer(
            SEGMENTER, [request], outputs=[grpcclient.InferRequestedOutput("mask")]
        )
        assert float((result.as_numpy("mask") == masks).mean()) > 0.9, service


def test_prometheus_discovers_and_scrapes_attnserve(prometheus: str) -> None:
    (target,) = prom.targets(prometheus, "attnserve")
    assert target["health"] == "up" and target["labels"]["service"] == "attnserve"


def test_a_wrong_scrape_target_is_caught(live: Live, tmp_path: Path) -> None:
    """A second Prometheus on the stack's network with a broken copy of prometheus.yml
    (attnserve's port wrong): the wait for an `up` target must fail, naming it down."""
    source = tools.PROMETHEUS_DIR / "prometheus.yml"
    config = broken_copy(source, tmp_path / "prometheus.yml", "port: 8000", "port: 8001")
    image = live.stack.config()["services"]["prometheus"]["image"]
    run = live.stack.docker(
        "run", "--detach", "--rm", "--network", f"{live.stack.project}_default",
        "--publish", "127.0.0.1::9090", "--volume", f"{config}:/etc/prometheus/prometheus.yml:ro",
        image, "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/tmp/data",
    )  # fmt: skip
    container = run.stdout.strip()
    try:
        port = live.stack.docker("port", container, "9090").stdout.split(":")[-1].strip()
        url = f"http://127.0.0.1:{port}"
        prom.wait_ready(url, BROKEN_TARGET_TIMEOUT_S)
        with pytest.raises(AssertionError, match="down"):
            deadline = time.monotonic() + BROKEN_TARGET_TIMEOUT_S
            while prom.targets(url, "attnserve") == [] and time.monotonic() < deadline:
                time.sleep(1.0)
            prom.wait_for_targets_up(url, "attnserve", 1, BROKEN_TARGET_TIMEOUT_S)
    finally:
        live.stack.docker("rm", "--force", container, check=False)


def test_locust_runs_headless_without_a_failure(live: Live, prometheus: str) -> None:
    result = live.stack.compose(*LOCUST, timeout=LOCUST_TIMEOUT_S, check=False)
    assert result.returncode == 0, tools.output(result)
    stats = json.loads(result.stdout[result.stdout.index("[") :])
    requests = {entry["name"]: entry["num_requests"] for entry in stats}
    failures = {entry["name"]: entry["num_failures"] for entry in stats if entry["num_failures"]}
    assert failures == {}
    assert sum(requests.values()) >= 100, requests
    assert sum(1 for name in requests if not name.startswith("setup")) >= 8, requests


def test_every_dashboard_query_returns_a_series(live: Live, prometheus: str) -> None:
    """After locust's traffic: a panel that can never show data is a defect. The same check on a
    copy whose first query names a metric attnserve does not export must fail."""
    exprs = expressions(json.loads(tools.DASHBOARD.read_text()))
    assert len(exprs) >= 15
    # series only a model with target_latency_ms exports (the stack's models have none)
    conditional = {key for key, expr in exprs.items() if CONDITIONAL.search(expr)}
    assert len(conditional) == 2, conditional
    assert set(prom.empty_queries(prometheus, exprs)) == conditional
    # locust saw no failure: the 5xx ratio is a real 0, not "No data"
    assert [float(s["value"][1]) for s in prom.query(prometheus, exprs[RATIO_PANEL])] == [0.0]
    broken = expressions(json.loads(tools.DASHBOARD.read_text().replace(
        "attnserve_requests_total{", "attnserve_request_total{", 1
    )))  # fmt: skip
    assert "2/A" in prom.empty_queries(prometheus, broken)


def test_every_recording_rule_returns_a_series(live: Live, prometheus: str) -> None:
    recorded = len(RECORD.findall((tools.RULES_DIR / "recording.yml").read_text()))
    rules = prom.rules(prometheus)
    recording = {rule["name"]: rule["name"] for rule in rules if rule["type"] == "recording"}
    assert len(recording) == recorded
    assert [rule["name"] for rule in rules if rule["health"] != "ok"] == []
    assert prom.empty_queries(prometheus, recording) == {}
    ratios = prom.query(prometheus, "model:attnserve_request_errors:ratio_rate5m")
    by_model = {sample["metric"]["model"]: float(sample["value"][1]) for sample in ratios}
    # the demo models both served locust without a 5xx (a model that has seen no request
    # for 5 minutes reads 0 / 0, NaN, and is left out)
    assert [by_model.get(CLASSIFIER), by_model.get(SEGMENTER)] == [0.0, 0.0], by_model


def test_an_alert_fires_when_its_condition_is_forced(live: Live, prometheus: str) -> None:
    """Requests whose deadline (timeout_ms) passes before they are queued answer 504: enough of
    them push the 5xx ratio over 5 % and AttnserveHighErrorRatio fires (``for:`` is 0 s in the
    test's copy of the rules; the threshold is the shipped one)."""
    alert = "AttnserveHighErrorRatio"
    assert prom.firing(prometheus, alert) == []
    image, _ = predict_images(1)[0]
    deadline = time.monotonic() + ALERT_TIMEOUT_S
    while not (fired := prom.firing(prometheus, alert)) and time.monotonic() < deadline:
        replies = [predict(live.url(), image, timeout_ms="0.001") for _ in range(BURST)]
        statuses = {reply.status_code for reply in replies}
        assert statuses == {504}
        time.sleep(1.0)
    assert [sample["metric"]["model"] for sample in fired] == [CLASSIFIER]


def per_replica_requests(prometheus: str) -> dict[str, float]:
    samples = prom.query(prometheus, "sum by (instance) (attnserve_requests_total)")
    return {sample["metric"]["instance"]: float(sample["value"][1]) for sample in samples}


def test_scale_out_behind_the_balancer(live: Live, prometheus: str) -> None:
    """``--scale attnserve=2``: Prometheus finds both replicas by DNS, a burst through the
    balancer reaches both, and the dashboard's p99 query is one series over both."""
    live.stack.compose("up", "--detach", "--no-recreate", "--scale", "attnserve=2")
    live.stack.wait_healthy("attnserve", 2, SCALE_TIMEOUT_S)
    prom.wait_for_targets_up(prometheus, "attnserve", 2, TARGET_TIMEOUT_S)
    before = per_replica_requests(prometheus)
    image, _ = predict_images(1)[0]
    deadline = time.monotonic() + SCALE_TIMEOUT_S
    while True:
        statuses = {predict(live.url("balancer"), image).status_code for _ in range(BURST)}
        assert statuses == {200}
        after = per_replica_requests(prometheus)
        grown = [name for name, value in after.items() if value > before.get(name, 0.0)]
        if len(grown) == 2:
            break
        assert time.monotonic() < deadline, f"requests per replica: {before} -> {after}"
        time.sleep(1.0)
    p99 = prom.query(prometheus, expressions(json.loads(tools.DASHBOARD.read_text()))[P99_PANEL])
    assert len(p99) == 1 and math.isfinite(float(p99[0]["value"][1])), p99
    inputs = prom.query(prometheus, PER_REPLICA_SERIES)
    assert len(inputs) == 2
    assert httpx.get(f"{live.url('balancer')}/readyz", timeout=5.0).status_code == 200
