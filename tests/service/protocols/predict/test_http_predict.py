"""/predict against a real server on the demo repository: the whole pipeline is right
(decode, resize, normalise, batch, post-process), maps and masks come back, metrics move."""

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from models.demo.build import ACCURACY_TARGET, MIOU_TARGET, SEGMENTER
from models.demo.shapes import SEGMENTATION_CLASSES, SHAPE_CLASSES, generate_batch
from models.demo.train import mean_iou
from models.repository.config import read_config
from models.repository.layout import config_path, model_file
from service.imaging import load_for_model
from tests.conftest import DemoBuild
from tests.service.images import encode
from tests.service.server import Server

HTTP_SEED = 777
CLASSIFIER, SEGMENTER_NAME = "shapes-classifier", "shapes-segmenter"


def post_image(server: Server, data: bytes, content_type: str = "image/png", **params: object):
    with server.client() as client:
        return client.post("/predict", content=data, params=params,
                           headers={"content-type": content_type})  # fmt: skip


def png_array(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_served_prediction_equals_the_model_called_directly(
    demo_server: Server, demo_build: DemoBuild
) -> None:
    images, _, _ = generate_batch(HTTP_SEED, 3, 64)
    config = read_config(config_path(demo_build.repo, CLASSIFIER))
    model = torch.jit.load(str(model_file(demo_build.repo, CLASSIFIER, 1, "model.pt"))).eval()
    for image in images:
        data = encode(image)
        response = post_image(demo_server, data, model=CLASSIFIER, top_k=5)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model"], body["version"], body["task"]) == (CLASSIFIER, 1, "classification")
        tensor, _ = load_for_model(data, config.input, max_pixels=10**8)
        with torch.inference_mode():
            expected = model(tensor[None])[0].softmax(0)
        for prediction in body["results"][0]["predictions"]:
            assert prediction["label"] == SHAPE_CLASSES[prediction["index"]]
            assert prediction["score"] == pytest.approx(
                float(expected[prediction["index"]]), abs=1e-5
            )
        scores = [p["score"] for p in body["results"][0]["predictions"]]
        assert scores == sorted(scores, reverse=True) and len(scores) == 5


def test_classifier_accuracy_over_http(demo_server: Server) -> None:
    images, labels, _ = generate_batch(HTTP_SEED + 1, 200, 64)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda im: post_image(demo_server, encode(im), top_k=1), images))
    predicted = [r.json()["results"][0]["predictions"][0]["index"] for r in responses]
    assert float(np.mean(np.array(predicted) == labels)) >= ACCURACY_TARGET


def test_segmenter_miou_over_http_with_masks_at_input_size(demo_server: Server) -> None:
    images, _, masks = generate_batch(HTTP_SEED + 2, 100, 64, SEGMENTER.max_shapes)
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(lambda im: post_image(demo_server, encode(im), model=SEGMENTER_NAME), images)
        )
    predicted = []
    for response in responses:
        mask = response.json()["results"][0]["mask"]
        array = png_array(mask["png"])
        assert array.shape == (mask["height"], mask["width"]) == (64, 64)
        assert sum(mask["class_fractions"].values()) == pytest.approx(1.0)
        assert list(mask["class_fractions"]) == list(SEGMENTATION_CLASSES)
        predicted.append(array)
    miou = mean_iou(torch.from_numpy(np.stack(predicted)).long(),
                    torch.from_numpy(masks).long(), len(SEGMENTATION_CLASSES))  # fmt: skip
    assert miou >= MIOU_TARGET


def test_mask_comes_back_at_the_uploaded_size(demo_server: Server) -> None:
    image = np.asarray(Image.fromarray(generate_batch(HTTP_SEED, 1, 64)[0][0]).resize((96, 80)))
    response = post_image(demo_server, encode(image), model=SEGMENTER_NAME)
    mask = response.json()["results"][0]["mask"]
    assert png_array(mask["png"]).shape == (80, 96)
    none = post_image(demo_server, encode(image), model=SEGMENTER_NAME, mask="none")
    assert none.json()["results"][0]["mask"] is None


def test_concurrent_requests_are_batched_and_equal_serial_ones(demo_server: Server) -> None:
    images, _, _ = generate_batch(HTTP_SEED + 3, 32, 64)
    payloads = [encode(image) for image in images]
    serial = [post_image(demo_server, p, top_k=5).json() for p in payloads]
    batches_before = demo_server.metric("attnserve_batch_size_count", model=CLASSIFIER)
    with ThreadPoolExecutor(32) as pool:
        concurrent = [r.json() for r in pool.map(lambda p: post_image(demo_server, p, top_k=5),
                                                  payloads)]  # fmt: skip
    sizes = [c["results"][0]["batch_size"] for c in concurrent]
    assert max(sizes) > 1, sizes
    batches = demo_server.metric("attnserve_batch_size_count", model=CLASSIFIER) - batches_before
    assert batches < 32  # fewer batches than requests: batching happened
    for alone, batched in zip(serial, concurrent, strict=True):
        for a, b in zip(alone["results"][0]["predictions"], batched["results"][0]["predictions"],
                        strict=True):  # fmt: skip
            assert a["index"] == b["index"]
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_attention_maps_by_name(demo_server: Server, demo_build: DemoBuild) -> None:
    config = read_config(config_path(demo_build.repo, CLASSIFIER))
    data = encode(generate_batch(HTTP_SEED, 1, 64)[0][0])
    everything = post_image(demo_server, data, attention="true").json()["results"][0]
    assert sorted(everything["attention"]) == config.attention_maps
    for heatmap in everything["attention"].values():
        pixels = png_array(heatmap["png"])
        assert pixels.dtype == np.uint8
        assert pixels.size == int(np.prod(heatmap["shape"]))
        assert heatmap["min"] <= heatmap["max"]
    wanted = [n for n in config.attention_maps if n.endswith("spatial")][:2]
    chosen = post_image(demo_server, data, attention=",".join(wanted)).json()["results"][0]
    assert sorted(chosen["attention"]) == sorted(wanted)
    assert post_image(demo_server, data).json()["results"][0]["attention"] == {}
    unknown = post_image(demo_server, data, attention="no.such.map")
    assert unknown.status_code == 422
    assert "available" in unknown.json()["error"]["message"]


def test_multipart_gives_one_result_per_file_in_order(demo_server: Server) -> None:
    images, _, _ = generate_batch(HTTP_SEED + 4, 3, 64)
    files = [("file", (f"{i}.png", encode(im), "image/png")) for i, im in enumerate(images)]
    with demo_server.client() as client:
        response = client.post("/predict", files=files, params={"top_k": 1})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    singles = [post_image(demo_server, encode(im), top_k=1).json()["results"][0] for im in images]
    assert len(results) == 3
    for result, single in zip(results, singles, strict=True):
        assert result["predictions"][0]["index"] == single["predictions"][0]["index"]
        assert result["predictions"][0]["score"] == pytest.approx(single["predictions"][0]["score"])


def test_metrics_move_as_requests_are_served(demo_server: Server) -> None:
    labels = {"model": CLASSIFIER, "endpoint": "predict", "status": "200"}
    before = demo_server.metric("attnserve_requests_total", **labels)
    queue_before = demo_server.metric("attnserve_queue_duration_seconds_count", model=CLASSIFIER)
    data = encode(generate_batch(HTTP_SEED, 1, 64)[0][0])
    for _ in range(3):
        assert post_image(demo_server, data).status_code == 200
    assert demo_server.metric("attnserve_requests_total", **labels) == before + 3
    queued = demo_server.metric("attnserve_queue_duration_seconds_count", model=CLASSIFIER)
    assert queued == queue_before + 3
    assert demo_server.metric("attnserve_model_ready", model=CLASSIFIER, version="1") == 1
    assert demo_server.metric("attnserve_request_duration_seconds_count", model=CLASSIFIER) > 0
    assert demo_server.metric("attnserve_preprocess_duration_seconds_count", model=CLASSIFIER) > 0


def model_label_values(server: Server) -> set[str]:
    """Every value of the ``model`` label on the request counter, as Prometheus would ingest it
    (an empty label value is the same as no label: such a series adds no value to a picker)."""
    text = httpx.get(server.url + "/metrics", timeout=5.0).text
    return {
        sample.labels["model"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "attnserve_requests_total" and sample.labels.get("model")
    }


def test_unknown_models_are_no_label_value_and_counted_once(demo_server: Server) -> None:
    not_found = {"status": "404"}
    before = demo_server.metric("attnserve_requests_total", **not_found)
    unnamed = demo_server.metric("attnserve_requests_total", model="", **not_found)
    data = encode(generate_batch(HTTP_SEED, 1, 64)[0][0])
    assert post_image(demo_server, data, model="no-such-model").status_code == 404
    with demo_server.client() as client:
        assert client.post("/v2/models/nope/infer", json={"inputs": []}).status_code == 404
    assert demo_server.metric("attnserve_requests_total", **not_found) == before + 2
    assert demo_server.metric("attnserve_requests_total", model="", **not_found) == unnamed + 2
    assert model_label_values(demo_server) <= {CLASSIFIER, SEGMENTER_NAME}


def test_health_models_and_docs(demo_server: Server) -> None:
    with demo_server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        models = client.get("/models").json()
        assert {m["name"] for m in models["models"]} == {CLASSIFIER, SEGMENTER_NAME}
        assert all(m["ready"] for m in models["models"])
        assert "/predict" in client.get("/openapi.json").json()["paths"]
        assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("params", "content", "content_type", "status", "code"),
    [
        ({"model": "nope"}, b"x", "image/png", 404, "not_found"),
        ({"model": CLASSIFIER, "version": 9}, b"x", "image/png", 404, "not_found"),
        ({}, b"hello", "text/plain", 415, "unsupported_media_type"),
        ({}, b"", "image/png", 400, "invalid_image"),
        ({}, b"<html></html>", "image/png", 400, "invalid_image"),
        ({"top_k": 0}, b"x", "image/png", 422, "invalid_parameter"),
        ({"mask": "jpeg"}, b"x", "image/png", 422, "invalid_parameter"),
        ({"timeout_ms": -5}, b"x", "image/png", 422, "invalid_parameter"),
    ],
)
def test_bad_requests_get_clear_errors(
    demo_server: Server, params: dict, content: bytes, content_type: str, status: int, code: str
) -> None:
    response = post_image(demo_server, content, content_type, **params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
