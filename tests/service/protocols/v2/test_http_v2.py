"""The Open Inference Protocol endpoint driven by the official ``tritonclient.http``."""

import numpy as np
import pytest
import torch
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from models.demo.shapes import generate_batch
from models.repository.config import read_config
from models.repository.layout import config_path, model_file
from service.imaging import load_for_model
from tests.conftest import DemoBuild
from tests.service.images import encode
from tests.service.server import Server

CLASSIFIER, SEGMENTER = "shapes-classifier", "shapes-segmenter"


@pytest.fixture
def client(demo_server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(demo_server.url.removeprefix("http://"))


def direct_logits(demo_build: DemoBuild, name: str, tensors: torch.Tensor) -> np.ndarray:
    model = torch.jit.load(str(model_file(demo_build.repo, name, 1, "model.pt"))).eval()
    with torch.inference_mode():
        return model(tensors).numpy()


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(CLASSIFIER)
    assert not client.is_model_ready("no-such-model")
    metadata = client.get_model_metadata(SEGMENTER)
    assert metadata["name"] == SEGMENTER
    assert {o["name"] for o in metadata["outputs"]} >= {"logits", "probabilities", "mask"}
    assert client.get_server_metadata()["name"] == "attnserve"


@pytest.mark.parametrize("binary", [True, False])
def test_fp32_infer_equals_the_model(
    client: triton.InferenceServerClient, demo_build: DemoBuild, binary: bool
) -> None:
    config = read_config(config_path(demo_build.repo, CLASSIFIER))
    images, _, _ = generate_batch(31, 4, 64)
    tensors = torch.stack(
        [load_for_model(encode(im), config.input, max_pixels=10**8)[0] for im in images]
    )
    request = triton.InferInput("input", list(tensors.shape), "FP32")
    request.set_data_from_numpy(tensors.numpy(), binary_data=binary)
    outputs = [
        triton.InferRequestedOutput(n, binary_data=binary) for n in ("logits", "probabilities")
    ]
    result = client.infer(CLASSIFIER, [request], outputs=outputs)
    expected = direct_logits(demo_build, CLASSIFIER, tensors)
    np.testing.assert_allclose(result.as_numpy("logits"), expected, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(result.as_numpy("probabilities").sum(axis=1), 1.0, atol=1e-5)


def test_bytes_input_segmentation_with_a_map(
    client: triton.InferenceServerClient, demo_build: DemoBuild
) -> None:
    config = read_config(config_path(demo_build.repo, SEGMENTER))
    images, _, masks = generate_batch(32, 2, 64, max_shapes=2)
    request = triton.InferInput("image", [2], "BYTES")
    request.set_data_from_numpy(np.array([encode(im) for im in images], dtype=object))
    map_name = config.attention_maps[-1]
    outputs = [triton.InferRequestedOutput(n) for n in ("mask", map_name)]
    result = client.infer(SEGMENTER, [request], outputs=outputs)
    mask = result.as_numpy("mask")
    assert mask.shape == (2, 64, 64)
    assert float((mask == masks).mean()) > 0.9
    assert result.as_numpy(map_name).shape[0] == 2


def test_malformed_requests_are_400(client: triton.InferenceServerClient) -> None:
    wrong_shape = triton.InferInput("input", [1, 3, 8, 8], "FP32")
    wrong_shape.set_data_from_numpy(np.zeros((1, 3, 8, 8), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="FP32"):
        client.infer(CLASSIFIER, [wrong_shape])
    not_finite = triton.InferInput("input", [1, 3, 64, 64], "FP32")
    not_finite.set_data_from_numpy(np.full((1, 3, 64, 64), np.nan, dtype=np.float32))
    with pytest.raises(InferenceServerException, match="NaN"):
        client.infer(CLASSIFIER, [not_finite])
    with pytest.raises(InferenceServerException, match="unknown output"):
        ok = triton.InferInput("input", [1, 3, 64, 64], "FP32")
        ok.set_data_from_numpy(np.zeros((1, 3, 64, 64), dtype=np.float32))
        client.infer(CLASSIFIER, [ok], outputs=[triton.InferRequestedOutput("nope")])


def compatible(declared: list[int], actual: tuple[int, ...]) -> bool:
    """Same rank, and equal wherever the declared dimension is not -1."""
    if len(declared) != len(actual):
        return False
    return all(d in (-1, a) for d, a in zip(declared, actual, strict=True))


@pytest.mark.parametrize("name", [CLASSIFIER, SEGMENTER])
def test_metadata_shapes_are_the_shapes_infer_returns(
    client: triton.InferenceServerClient, name: str
) -> None:
    declared = {o["name"]: o["shape"] for o in client.get_model_metadata(name)["outputs"]}
    images, _, _ = generate_batch(33, 2, 64)
    request = triton.InferInput("image", [2], "BYTES")
    request.set_data_from_numpy(np.array([encode(im) for im in images], dtype=object))
    outputs = [triton.InferRequestedOutput(n) for n in declared]
    result = client.infer(name, [request], outputs=outputs)
    got = {n: result.as_numpy(n).shape for n in declared}
    assert all(len(shape) >= 2 for shape in got.values())  # maps included: no [-1] left
    wrong = {n: (declared[n], got[n]) for n in declared if not compatible(declared[n], got[n])}
    assert not wrong, wrong
    assert all(shape[0] == 2 for shape in got.values())


def test_the_compatibility_check_refuses_a_wrong_rank() -> None:
    assert compatible([-1, 8], (2, 8)) and compatible([-1, -1], (2, 8))
    assert not compatible([-1], (2, 8)) and not compatible([-1, 7], (2, 8))
