"""Every failure a gRPC client can cause gets its status code and a message to act on: the
same error codes as HTTP (service/errors.py), mapped once in service/protocols/grpc/status.py."""

import io

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.service.protocols.grpc.conftest import API_KEY, PIXEL_LIMIT, UPLOAD_LIMIT, GrpcServer
from tests.service.protocols.grpc.test_grpc_infer import CLASSIFIER, SEGMENTER, grpc_fp32

GOOD = np.zeros((1, 3, 64, 64), dtype=np.float32)


def status_of(call, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as raised:
        call(*args, **kwargs)
    return raised.value.status(), raised.value.message()


def stub_status(grpc_demo: GrpcServer, request: service_pb2.ModelInferRequest):
    with grpc.insecure_channel(grpc_demo.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ModelInfer(request)
    return raised.value.code(), raised.value.details()


def test_unknown_model_and_version_are_not_found(grpc_demo: GrpcServer) -> None:
    client = grpc_demo.grpc()
    status, message = status_of(client.infer, "no-such-model", [grpc_fp32(GOOD)])
    assert status == "StatusCode.NOT_FOUND" and CLASSIFIER in message
    status, message = status_of(client.infer, CLASSIFIER, [grpc_fp32(GOOD)], model_version="9")
    assert status == "StatusCode.NOT_FOUND" and "no version 9" in message
    status, _ = status_of(client.get_model_metadata, "no-such-model")
    assert status == "StatusCode.NOT_FOUND"


def test_bad_tensors_are_invalid_argument(grpc_demo: GrpcServer) -> None:
    client = grpc_demo.grpc()
    wrong = np.zeros((1, 3, 8, 8), dtype=np.float32)
    status, message = status_of(client.infer, CLASSIFIER, [grpc_fp32(wrong)])
    assert status == "StatusCode.INVALID_ARGUMENT" and "[N, 3, 64, 64]" in message
    status, message = status_of(client.infer, CLASSIFIER, [grpc_fp32(np.full_like(GOOD, np.nan))])
    assert status == "StatusCode.INVALID_ARGUMENT" and "NaN" in message
    outputs = [grpcclient.InferRequestedOutput("nope")]
    status, message = status_of(client.infer, CLASSIFIER, [grpc_fp32(GOOD)], outputs=outputs)
    assert status == "StatusCode.INVALID_ARGUMENT" and "unknown output" in message
    status, message = status_of(client.infer, CLASSIFIER, [grpc_fp32(GOOD)], model_version="v1")
    assert status == "StatusCode.INVALID_ARGUMENT" and "version must be a number" in message
    image = grpcclient.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array([b"not an image"], dtype=object))
    status, _ = status_of(client.infer, SEGMENTER, [image])
    assert status == "StatusCode.INVALID_ARGUMENT"


def test_malformed_protobuf_requests_are_invalid_argument(grpc_demo: GrpcServer) -> None:
    short = service_pb2.ModelInferRequest(model_name=CLASSIFIER)
    short.inputs.add(name="input", datatype="FP32", shape=[1, 3, 64, 64])
    short.inputs[0].contents.fp32_contents.extend([0.0] * 10)
    code, details = stub_status(grpc_demo, short)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "fp32_contents holds 10" in details

    mixed = service_pb2.ModelInferRequest(model_name=CLASSIFIER)
    mixed.inputs.add(name="input", datatype="FP32", shape=[1, 3, 64, 64])
    mixed.inputs[0].contents.fp32_contents.extend(GOOD.ravel().tolist())
    mixed.raw_input_contents.append(GOOD.tobytes())
    code, details = stub_status(grpc_demo, mixed)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "one way" in details

    short_raw = service_pb2.ModelInferRequest(model_name=CLASSIFIER)
    short_raw.inputs.add(name="input", datatype="FP32", shape=[1, 3, 64, 64])
    short_raw.raw_input_contents.append(GOOD.tobytes()[:-4])
    code, details = stub_status(grpc_demo, short_raw)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "needs 49152" in details

    nameless = service_pb2.ModelInferRequest()
    code, details = stub_status(grpc_demo, nameless)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "names no model" in details


def test_oversized_messages_and_images_are_resource_exhausted(grpc_demo: GrpcServer) -> None:
    client = grpc_demo.grpc()
    too_big = np.zeros((2, UPLOAD_LIMIT), dtype=np.uint8)  # over the upload limit
    tensor = grpcclient.InferInput("image", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([bytes(row) for row in too_big], dtype=object))
    status, _ = status_of(client.infer, SEGMENTER, [tensor])
    assert status == "StatusCode.RESOURCE_EXHAUSTED"
    buffer = io.BytesIO()
    Image.new("RGB", (PIXEL_LIMIT // 100 + 1, 100)).save(buffer, format="PNG")
    image = grpcclient.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array([buffer.getvalue()], dtype=object))
    status, message = status_of(client.infer, SEGMENTER, [image])
    assert status == "StatusCode.RESOURCE_EXHAUSTED" and "pixels" in message


def test_deadlines_are_deadline_exceeded(grpc_demo: GrpcServer) -> None:
    """Triton's ``timeout`` parameter (microseconds) and the call's own gRPC deadline."""
    client = grpc_demo.grpc()
    status, message = status_of(client.infer, CLASSIFIER, [grpc_fp32(GOOD)], timeout=1)
    assert status == "StatusCode.DEADLINE_EXCEEDED" and "deadline" in message
    status, _ = status_of(client.infer, CLASSIFIER, [grpc_fp32(GOOD)], client_timeout=1e-4)
    assert status == "StatusCode.DEADLINE_EXCEEDED"
    assert client.infer(CLASSIFIER, [grpc_fp32(GOOD)], timeout=30_000_000, client_timeout=30.0)


def test_repository_rpcs_need_the_api_key(grpc_demo: GrpcServer) -> None:
    client = grpc_demo.grpc()
    for headers in (None, {"authorization": f"Bearer {API_KEY}x"}, {"authorization": API_KEY}):
        status, message = status_of(client.load_model, CLASSIFIER, headers=headers)
        assert status == "StatusCode.UNAUTHENTICATED" and "Bearer" in message
        status, _ = status_of(client.unload_model, CLASSIFIER, headers=headers)
        assert status == "StatusCode.UNAUTHENTICATED"
    assert client.is_model_ready(CLASSIFIER)
    key = {"authorization": f"Bearer {API_KEY}"}
    client.load_model(CLASSIFIER, headers=key)  # a reload: it keeps serving
    assert client.is_model_ready(CLASSIFIER)
    status, _ = status_of(client.load_model, "no-such-model", headers=key)
    assert status == "StatusCode.NOT_FOUND"
    status, _ = status_of(client.load_model, "../etc", headers=key)
    assert status == "StatusCode.INVALID_ARGUMENT"
    assert API_KEY not in grpc_demo.server.log()
