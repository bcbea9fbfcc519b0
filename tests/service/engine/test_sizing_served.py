"""SLO-adaptive batching in a real server: with ``ATTNSERVE_TARGET_LATENCY_MS`` the demo
classifier's concurrent answers equal its serial ones, and the fitted cost and the cap it
chose are exported; without a target those gauges stay absent."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from models.demo.shapes import generate_batch
from tests.service.images import encode
from tests.service.server import DemoServers, Server

CLASSIFIER = "shapes-classifier"
REQUESTS = 32
MAX_BATCH = 16  # the demo classifier's config.json


def classify(server: Server, payload: bytes) -> dict:
    response = httpx.post(
        f"{server.url}/predict",
        params={"model": CLASSIFIER, "top_k": 3},
        content=payload,
        headers={"content-type": "image/png"},
        timeout=30.0,
    )
    assert response.status_code == 200, response.text
    return response.json()["results"][0]


def test_a_latency_target_caps_batches_and_exports_its_fit(demo_servers: DemoServers) -> None:
    server = demo_servers.shared({"ATTNSERVE_TARGET_LATENCY_MS": "40"})
    images, _, _ = generate_batch(4242, REQUESTS, 64)
    payloads = [encode(image) for image in images]
    serial = [classify(server, payload) for payload in payloads]
    with ThreadPoolExecutor(REQUESTS) as pool:
        concurrent = list(pool.map(lambda payload: classify(server, payload), payloads))
    for alone, batched in zip(serial, concurrent, strict=True):
        assert [p["index"] for p in alone["predictions"]] == [
            p["index"] for p in batched["predictions"]
        ]
        for a, b in zip(alone["predictions"], batched["predictions"], strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)
    labels = {"model": CLASSIFIER, "maps": "false"}
    cap = server.metric("attnserve_batch_size_cap", **labels)
    assert 1 <= cap <= MAX_BATCH
    assert max(result["batch_size"] for result in concurrent) <= MAX_BATCH
    assert server.metric("attnserve_batch_cost_seconds", term="slope", **labels) > 0


def test_without_a_target_no_fit_is_exported(demo_server: Server) -> None:
    classify(demo_server, encode(generate_batch(1, 1, 64)[0][0]))
    text = httpx.get(f"{demo_server.url}/metrics", timeout=5.0).text
    assert "attnserve_batch_size_cap{" not in text
    assert "attnserve_torch_threads 2.0" in text  # the test servers ask for 2 threads
