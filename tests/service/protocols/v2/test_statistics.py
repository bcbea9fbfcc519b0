"""Triton's statistics extension over HTTP, read by ``tritonclient.http`` after known traffic.

The shared server serves other tests too, so each test counts what its own requests added."""

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from models.demo.shapes import generate_batch
from tests.service.images import encode
from tests.service.protocols.passes import passes_by_size
from tests.service.server import Server

CLASSIFIER = "shapes-classifier"
STAGES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


@pytest.fixture
def client(demo_server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(demo_server.url.removeprefix("http://"))


def version_stats(client: triton.InferenceServerClient) -> dict[str, Any]:
    (entry,) = client.get_inference_statistics(CLASSIFIER, "1")["model_stats"]
    return entry


def counts(entry: dict[str, Any]) -> dict[str, int]:
    """The counters a test compares before and after its requests, flattened."""
    flat = {key: entry[key] for key in ("inference_count", "execution_count")}
    flat |= {f"{s}.{k}": entry["inference_stats"][s][k] for s in STAGES for k in ("count", "ns")}
    for batch in entry["batch_stats"]:
        flat[f"batch{batch['batch_size']}"] = batch["compute_infer"]["count"]
    return flat


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    old, new = counts(before), counts(after)
    return {key: value - old.get(key, 0) for key, value in new.items() if value != old.get(key)}


def fp32_request(size: int) -> triton.InferInput:
    request = triton.InferInput("input", [size, 3, 64, 64], "FP32")
    request.set_data_from_numpy(np.zeros((size, 3, 64, 64), dtype=np.float32))
    return request


def send(client: triton.InferenceServerClient, sizes: list[int]) -> None:
    for size in sizes:
        client.infer(CLASSIFIER, [fp32_request(size)])


def test_counts_equal_the_requests_sent(client: triton.InferenceServerClient) -> None:
    sizes = [1, 3, 2, 3]
    before, sent_ms = version_stats(client), time.time() * 1000
    send(client, sizes)
    after = version_stats(client)
    change = delta(before, after)

    assert change["inference_count"] == sum(sizes)  # images, not requests or batches
    assert change["success.count"] == len(sizes)
    assert "fail.count" not in change
    for stage in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert change[f"{stage}.count"] == len(sizes)  # one each per successful request
    # sent one after the other, each request's images are shared over the idle instances:
    # [1], [2, 1], [1, 1], [2, 1] with 2
    passes = passes_by_size(sizes)
    assert change["execution_count"] == sum(passes.values()) == 7
    assert {k: v for k, v in change.items() if k.startswith("batch")} == {
        f"batch{size}": count for size, count in passes.items()
    }
    assert change["success.ns"] > 0 and change["compute_infer.ns"] > 0
    assert 0 <= change.get("queue.ns", 0) <= change["success.ns"]
    assert after["last_inference"] >= sent_ms - 1  # ms since the epoch
    assert after["inference_stats"]["cache_hit"] == {"count": 0, "ns": 0}


def test_a_bad_image_is_a_fail_not_a_success(client: triton.InferenceServerClient) -> None:
    good = encode(generate_batch(5, 1, 64)[0][0])
    request = triton.InferInput("image", [2], "BYTES")
    request.set_data_from_numpy(np.array([good, b"not an image"], dtype=np.object_))
    before = version_stats(client)
    with pytest.raises(InferenceServerException) as raised:
        client.infer(CLASSIFIER, [request])
    assert raised.value.status() == "400"
    change = delta(before, version_stats(client))
    assert change["fail.count"] == 1 and change["fail.ns"] > 0
    assert "success.count" not in change and "inference_count" not in change


def test_predict_requests_count_too(
    client: triton.InferenceServerClient, demo_server: Server
) -> None:
    images = [encode(image) for image in generate_batch(6, 2, 64)[0]]
    files = [("file", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    before = version_stats(client)
    with demo_server.client() as http:
        assert http.post("/predict", files=files, params={"model": CLASSIFIER}).status_code == 200
        bad = http.post("/predict", content=b"not an image", headers={"content-type": "image/png"})
        assert bad.status_code == 400
    change = delta(before, version_stats(client))
    assert (change["inference_count"], change["success.count"], change["fail.count"]) == (2, 1, 1)


def test_every_model_and_version_and_unknown_ones(
    client: triton.InferenceServerClient, demo_server: Server
) -> None:
    everything = client.get_inference_statistics()["model_stats"]
    assert {(e["name"], e["version"]) for e in everything} >= {
        (CLASSIFIER, "1"), ("shapes-segmenter", "1")
    }  # fmt: skip
    (one,) = client.get_inference_statistics(CLASSIFIER)["model_stats"]
    assert one["name"] == CLASSIFIER and set(one["inference_stats"]) == {
        *STAGES, "cache_hit", "cache_miss"
    }  # fmt: skip
    for path in ("/v2/models/no-such-model/stats", f"/v2/models/{CLASSIFIER}/versions/9/stats"):
        response = httpx.get(demo_server.url + path, timeout=10.0)
        assert response.status_code == 404, path
        assert "no-such-model" in response.text or "version 9" in response.text
    with pytest.raises(InferenceServerException):
        client.get_inference_statistics("no-such-model")
    assert "statistics" in client.get_server_metadata()["extensions"]
