"""A real Prometheus scraping a real attnserve: the metrics parse, the histogram answers the
dashboard's p99 query, and the project's recording and alert rules evaluate without error.

Everything stays on 127.0.0.1; Prometheus runs from a temporary config and data folder and is
stopped by its PID. Every wait is a bounded poll."""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bench.servers import free_port, terminate
from tests.docker import tools
from tests.docker.prometheus_api import query
from tests.docker.prometheus_api import rules as loaded_rules
from tests.service.fake_models import Faulty, write_model
from tests.service.images import solid
from tests.service.server import Server, running_server

pytestmark = pytest.mark.slow

P99_QUERY = (
    "histogram_quantile(0.99, sum by (le) (rate(attnserve_request_duration_seconds_bucket[30s])))"
)
READY_TIMEOUT_S = 60.0
RESULT_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
POLL_S = 0.25
REQUESTS_PER_POLL = 4
DARK = (30, 30, 30)


@contextmanager
def running_prometheus(target: str, work: Path) -> Iterator[str]:
    """Prometheus scraping ``target`` every second with the project's rules loaded."""
    binary = tools.require(tools.prometheus(), "prometheus (Debian prometheus)")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tools.RULES_DIR / "recording.yml"), str(tools.RULES_DIR / "alerts.yml")],
        "scrape_configs": [{"job_name": "attnserve", "static_configs": [{"targets": [target]}]}],
    }
    config_file = work / "prometheus.yml"
    config_file.write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log_path = work / "prometheus.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _answers(url + "/-/ready"):
            assert process.poll() is None, f"prometheus exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"prometheus not ready:\n{log_path.read_text()}"
            time.sleep(POLL_S)
        yield url
    finally:
        terminate(process, STOP_TIMEOUT_S)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.TransportError:
        return False


def send_traffic(server: Server) -> None:
    with server.client() as client:
        for _ in range(REQUESTS_PER_POLL):
            response = client.post(
                "/predict",
                params={"model": "faulty"},
                content=solid(DARK),
                headers={"content-type": "image/png"},
            )
            assert response.status_code == 200, response.text


def poll_for_number(prometheus: str, server: Server, promql: str) -> float:
    """Keeps traffic flowing until ``promql`` returns one finite number (bounded in time)."""
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while time.monotonic() < deadline:
        send_traffic(server)
        result = query(prometheus, promql)
        if result and math.isfinite(value := float(result[0]["value"][1])):
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"{promql} returned no number in {RESULT_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Server]]:
    repo = tmp_path_factory.mktemp("scrape-repo")
    write_model(repo, "faulty", Faulty())
    with running_server(repo, tmp_path_factory.mktemp("scrape-logs")) as server:
        target = server.url.removeprefix("http://")
        with running_prometheus(target, tmp_path_factory.mktemp("prometheus")) as prometheus:
            yield prometheus, server


def test_prometheus_computes_p99_latency_from_attnserve(scraped: tuple[str, Server]) -> None:
    prometheus, server = scraped
    p99 = poll_for_number(prometheus, server, P99_QUERY)
    assert 0 < p99 <= 10.0  # inside the histogram's buckets: 0.5 ms to 10 s
    (up,) = query(prometheus, "up")
    assert up["value"][1] == "1"


def test_recording_and_alert_rules_evaluate_on_real_metrics(scraped: tuple[str, Server]) -> None:
    prometheus, server = scraped
    recorded = 'model:attnserve_request_duration_seconds:p99_rate1m{model="faulty"}'
    assert poll_for_number(prometheus, server, recorded) > 0
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while True:
        rules = loaded_rules(prometheus)
        if rules and all(rule["health"] != "unknown" for rule in rules):
            break
        assert time.monotonic() < deadline, "rules never evaluated"
        time.sleep(POLL_S)
    assert [r["name"] for r in rules if r["health"] != "ok"] == []
    ready = query(prometheus, 'attnserve_model_ready{model="faulty"}')
    assert [sample["value"][1] for sample in ready] == ["1"]
    firing = query(prometheus, 'ALERTS{alertname="AttnserveModelNotReady"}')
    assert firing == []


def test_an_unknown_model_is_counted_once_and_is_no_model_label_value(
    scraped: tuple[str, Server],
) -> None:
    """What the dashboard's model picker reads (``label_values(attnserve_requests_total,
    model)``) holds the served models only, while the 404s are counted under their status."""
    prometheus, server = scraped
    with server.client() as client:
        for _ in range(REQUESTS_PER_POLL):
            response = client.post(
                "/predict",
                params={"model": "no-such-model"},
                content=solid(DARK),
                headers={"content-type": "image/png"},
            )
            assert response.status_code == 404
    promql = 'sum(attnserve_requests_total{status="404"})'
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while not (found := query(prometheus, promql)) or float(found[0]["value"][1]) < 4:
        assert time.monotonic() < deadline, f"{promql} never reached 4: {found}"
        time.sleep(POLL_S)
    series = query(prometheus, 'attnserve_requests_total{status="404"}')
    assert [s["metric"].get("model") for s in series] == [None]
    response = httpx.get(
        f"{prometheus}/api/v1/label/model/values",
        params={"match[]": "attnserve_requests_total"},
        timeout=5.0,
    )
    assert response.json()["data"] == ["faulty"]
