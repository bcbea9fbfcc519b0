"""The load test's own correctness: its request bodies are what the service parses, and the whole
locust mix runs against a real demo server with no failures and every request type exercised.

``payloads.py`` is loaded from its file (it is not a package, and importing locust here would
monkey-patch this process with gevent), and locust itself runs as a subprocess.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from bench.servers import free_port
from models.repository.config import InputSpec
from service.imaging import preprocess
from service.protocols.v2.codec import parse_infer_request
from tests.service.protocols.grpc.conftest import grpc_env
from tests.service.server import DemoServers

LOCUST_DIR = Path(__file__).resolve().parents[2] / "docker" / "locust"
LOCUST_RUN_TIMEOUT_S = 120
REQUEST_TYPES = {
    "setup GET /readyz",
    "setup GET /models",
    "/predict classify raw",
    "/predict classify raw +attention",
    "/predict classify multipart",
    "/predict segment raw",
    "/predict segment raw +attention",
    "/predict segment multipart",
    "/v2 infer classify BYTES",
    "/v2 infer classify FP32",
    "/v2 infer segment BYTES +attention",
    "/v2 infer segment FP32",
    "setup grpc ServerReady",
    "grpc infer classify BYTES",
    "grpc infer classify FP32",
    "grpc infer segment BYTES +attention",
}


@pytest.fixture(scope="module")
def payloads() -> ModuleType:
    spec = importlib.util.spec_from_file_location("locust_payloads", LOCUST_DIR / "payloads.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_image_pool_has_every_size_and_format(payloads: ModuleType) -> None:
    pool = payloads.build_image_pool(seed=3)
    seen = set()
    for image in pool:
        decoded = Image.open(io.BytesIO(image.data))
        assert decoded.size == (image.width, image.height)
        assert payloads.CONTENT_TYPES[decoded.format] == image.content_type
        seen.add((decoded.size, decoded.format))
    assert seen == {(size, fmt) for size in payloads.SIZES for fmt in payloads.FORMATS}


def test_without_the_project_the_fallback_draws_images(
    payloads: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The locust container may lack ``models``: images must still come, from Pillow."""
    demo = payloads.make_pixels(5, 2, 480, 320)
    monkeypatch.setitem(sys.modules, "models.demo.shapes", None)  # makes the import fail
    fallback = payloads.make_pixels(5, 2, 480, 320)
    assert fallback.shape == demo.shape == (2, 320, 480, 3)
    assert fallback.dtype == np.uint8
    assert not np.array_equal(fallback, demo)
    assert fallback.std() > 10  # shapes on a noisy gradient, not a flat fill


def test_v2_bytes_body_is_what_the_service_parses(payloads: ModuleType) -> None:
    images = [image.data for image in payloads.build_image_pool()[:3]]
    body, headers = payloads.v2_bytes_body(images, ["probabilities"])
    parsed = parse_infer_request(body, headers["Inference-Header-Content-Length"])
    (tensor,) = parsed.inputs
    assert (tensor.name, tensor.datatype, tensor.shape) == ("image", "BYTES", (3,))
    assert [bytes(data) for data in tensor.data] == images
    assert [(o.name, o.binary_data) for o in parsed.outputs] == [("probabilities", True)]


def test_v2_fp32_body_matches_the_service_preprocessing(payloads: ModuleType) -> None:
    """The client-side normalisation equals /predict's, so FP32 traffic is realistic input."""
    pixels = payloads.make_pixels(7, 2, 64, 64)
    spec = InputSpec(height=64, width=64, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    tensor = payloads.normalised_tensor(pixels, 64, 64, spec.mean, spec.std)
    expected = np.stack([preprocess(Image.fromarray(p), spec).numpy() for p in pixels])
    np.testing.assert_allclose(tensor, expected, rtol=1e-5, atol=1e-5)

    body, headers = payloads.v2_fp32_body(tensor, ["mask"])
    (parsed,) = parse_infer_request(body, headers["Inference-Header-Content-Length"]).inputs
    assert (parsed.name, parsed.datatype, parsed.shape) == ("input", "FP32", (2, 3, 64, 64))
    np.testing.assert_array_equal(parsed.data, tensor)


@pytest.mark.slow
def test_locust_mix_runs_clean_against_the_demo_models(
    demo_servers: DemoServers, tmp_path: Path
) -> None:
    """16 users for 15 s: no failures, no task exceptions, every request type sent and served."""
    stats_path = tmp_path / "stats.json"
    locust = Path(sys.executable).parent / "locust"
    grpc_port = free_port()
    with demo_servers.private(grpc_env(grpc_port)) as server:  # its own counters
        command = [str(locust), "--headless", "-u", "16", "-r", "16", "-t", "15s",
                   "--only-summary", "--json-file", str(stats_path.with_suffix("")),
                   "-f", str(LOCUST_DIR / "locustfile.py"), "--host", server.url]  # fmt: skip
        environment = {**os.environ, "ATTNSERVE_GRPC_TARGET": f"127.0.0.1:{grpc_port}"}
        run = subprocess.run(command, capture_output=True, text=True, env=environment,
                             timeout=LOCUST_RUN_TIMEOUT_S, check=False)  # fmt: skip
        served = {
            (model, endpoint): server.metric(
                "attnserve_requests_total", model=model, endpoint=endpoint, status="200"
            )
            for model in ("shapes-classifier", "shapes-segmenter")
            for endpoint in ("predict", "v2_infer", "grpc_infer")
        }
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Traceback" not in output, output
    stats = {entry["name"]: entry for entry in json.loads(stats_path.read_text())}
    assert set(stats) == REQUEST_TYPES
    assert {name: e["num_failures"] for name, e in stats.items()} == dict.fromkeys(stats, 0)
    assert all(entry["num_requests"] > 0 for entry in stats.values()), stats
    assert all(count > 0 for count in served.values()), served
