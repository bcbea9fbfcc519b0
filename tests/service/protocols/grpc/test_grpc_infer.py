"""The gRPC Open Inference Protocol driven by the official ``tritonclient.grpc``: health,
metadata, and infer with raw, typed and BYTES inputs giving what HTTP v2 gives."""

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc

from models.demo.shapes import generate_batch
from service.metrics import UNKNOWN_MODEL
from tests.service.images import encode
from tests.service.protocols.grpc.conftest import GrpcServer

CLASSIFIER, SEGMENTER = "shapes-classifier", "shapes-segmenter"
SIZE = 64


def demo_inputs(seed: int, count: int) -> np.ndarray:
    """Normalised-looking FP32 inputs (the model takes any finite values)."""
    return np.random.default_rng(seed).standard_normal((count, 3, SIZE, SIZE), dtype=np.float32)


def grpc_fp32(data: np.ndarray) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("input", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    return tensor


def http_fp32(data: np.ndarray) -> httpclient.InferInput:
    tensor = httpclient.InferInput("input", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data, binary_data=True)
    return tensor


def with_int_shapes(metadata: dict) -> dict:
    """protobuf's JSON form writes int64 as strings; HTTP v2's are numbers."""

    def tensors(key: str) -> list[dict]:
        return [{**t, "shape": [int(d) for d in t["shape"]]} for t in metadata[key]]

    return {**metadata, "inputs": tensors("inputs"), "outputs": tensors("outputs")}


def test_health_and_server_metadata(grpc_demo: GrpcServer) -> None:
    client = grpc_demo.grpc()
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(CLASSIFIER) and client.is_model_ready(SEGMENTER, "1")
    assert not client.is_model_ready("no-such-model")
    assert not client.is_model_ready(CLASSIFIER, "7")
    metadata = client.get_server_metadata(as_json=True)
    assert metadata["name"] == "attnserve" and metadata["version"]


@pytest.mark.parametrize("model", [CLASSIFIER, SEGMENTER])
def test_metadata_shapes_are_the_infer_shapes(grpc_demo: GrpcServer, model: str) -> None:
    client = grpc_demo.grpc()
    metadata = client.get_model_metadata(model, as_json=True)
    assert metadata["name"] == model and metadata["versions"] == ["1"]
    assert metadata == client.get_model_metadata(model, "1", as_json=True)
    assert with_int_shapes(metadata) == grpc_demo.http().get_model_metadata(model)
    declared = {o["name"]: o for o in metadata["outputs"]}
    names = ["logits", "probabilities"] + (["mask"] if model == SEGMENTER else [])
    outputs = [grpcclient.InferRequestedOutput(name) for name in names]
    result = client.infer(model, [grpc_fp32(demo_inputs(1, 3))], outputs=outputs)
    for name in names:
        shape = [int(d) for d in declared[name]["shape"]]
        assert shape[0] == -1
        assert list(result.as_numpy(name).shape) == [3, *shape[1:]], name
        assert result.get_output(name).datatype == declared[name]["datatype"]


@pytest.mark.parametrize("model", [CLASSIFIER, SEGMENTER])
def test_raw_fp32_equals_http_v2(grpc_demo: GrpcServer, model: str) -> None:
    data = demo_inputs(2, 4)
    names = ["logits", "probabilities"]
    over_grpc = grpc_demo.grpc().infer(
        model, [grpc_fp32(data)], outputs=[grpcclient.InferRequestedOutput(n) for n in names]
    )
    over_http = grpc_demo.http().infer(
        model, [http_fp32(data)], outputs=[httpclient.InferRequestedOutput(n) for n in names]
    )
    for name in names:
        np.testing.assert_array_equal(over_grpc.as_numpy(name), over_http.as_numpy(name))
    assert over_grpc.get_response().model_version == "1"


def typed_request(data: np.ndarray, request_id: str) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=CLASSIFIER, id=request_id)
    tensor = request.inputs.add(name="input", datatype="FP32", shape=data.shape)
    tensor.contents.fp32_contents.extend(data.ravel().tolist())
    request.outputs.add(name="logits")
    return request


def test_typed_contents_equal_raw_contents(grpc_demo: GrpcServer) -> None:
    """Typed ``contents`` (what other gRPC clients send) through tritonclient's own stub."""
    data = demo_inputs(3, 2)
    with grpc.insecure_channel(grpc_demo.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(typed_request(data, "typed-1"))
    assert response.id == "typed-1" and [o.name for o in response.outputs] == ["logits"]
    assert list(response.outputs[0].shape) == [2, 5]
    typed = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 5)
    raw = grpc_demo.grpc().infer(
        CLASSIFIER, [grpc_fp32(data)], outputs=[grpcclient.InferRequestedOutput("logits")]
    )
    np.testing.assert_array_equal(typed, raw.as_numpy("logits"))


def test_bytes_images_equal_http_v2(grpc_demo: GrpcServer) -> None:
    images, _, masks = generate_batch(41, 2, SIZE, max_shapes=2)
    encoded = np.array([encode(im) for im in images], dtype=object)
    grpc_image = grpcclient.InferInput("image", [2], "BYTES")
    grpc_image.set_data_from_numpy(encoded)
    http_image = httpclient.InferInput("image", [2], "BYTES")
    http_image.set_data_from_numpy(encoded, binary_data=True)
    names = ["mask", "logits"]
    over_grpc = grpc_demo.grpc().infer(
        SEGMENTER, [grpc_image], outputs=[grpcclient.InferRequestedOutput(n) for n in names]
    )
    over_http = grpc_demo.http().infer(
        SEGMENTER, [http_image], outputs=[httpclient.InferRequestedOutput(n) for n in names]
    )
    mask = over_grpc.as_numpy("mask")
    assert mask.dtype == np.int32 and mask.shape == (2, SIZE, SIZE)
    assert float((mask == masks).mean()) > 0.9
    for name in names:
        np.testing.assert_array_equal(over_grpc.as_numpy(name), over_http.as_numpy(name))


def test_selected_outputs_only_and_in_order(grpc_demo: GrpcServer) -> None:
    client = grpc_demo.grpc()
    map_name = client.get_model_metadata(SEGMENTER, as_json=True)["outputs"][-1]["name"]
    wanted = [map_name, "probabilities"]
    result = client.infer(
        SEGMENTER,
        [grpc_fp32(demo_inputs(4, 2))],
        outputs=[grpcclient.InferRequestedOutput(n) for n in wanted],
    )
    assert [o.name for o in result.get_response().outputs] == wanted
    assert result.as_numpy(map_name).shape[0] == 2
    np.testing.assert_allclose(result.as_numpy("probabilities").sum(axis=1), 1.0, atol=1e-5)
    default = client.infer(CLASSIFIER, [grpc_fp32(demo_inputs(5, 1))])
    assert [o.name for o in default.get_response().outputs] == ["logits", "probabilities"]


def test_grpc_requests_are_counted_under_their_own_endpoint(grpc_demo: GrpcServer) -> None:
    server = grpc_demo.server
    labels = {"model": CLASSIFIER, "endpoint": "grpc_infer", "status": "200"}
    before = server.metric("attnserve_requests_total", **labels)
    grpc_demo.grpc().infer(CLASSIFIER, [grpc_fp32(demo_inputs(6, 1))])
    assert server.metric("attnserve_requests_total", **labels) == before + 1
    missing = {"model": UNKNOWN_MODEL, "endpoint": "grpc_infer", "status": "404"}
    before_missing = server.metric("attnserve_requests_total", **missing)
    with pytest.raises(grpcclient.InferenceServerException):
        grpc_demo.grpc().infer("no-such-model", [grpc_fp32(demo_inputs(6, 1))])
    assert server.metric("attnserve_requests_total", **missing) == before_missing + 1
