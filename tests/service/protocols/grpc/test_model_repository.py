"""Triton's ``model_repository`` extension as its users drive it: ``tritonclient.http`` and
``tritonclient.grpc`` against the demo server with an API key (index, unload, load, the key,
unknown models), and ``GET /v2``'s extension list with and without a key."""

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.service.protocols.grpc.conftest import API_KEY, GrpcServer
from tests.service.protocols.grpc.test_grpc_infer import (
    CLASSIFIER,
    SEGMENTER,
    demo_inputs,
    grpc_fp32,
    http_fp32,
)
from tests.service.server import Server

KEY = {"authorization": f"Bearer {API_KEY}"}
READY = [
    {"name": CLASSIFIER, "version": "1", "state": "READY", "reason": ""},
    {"name": SEGMENTER, "version": "1", "state": "READY", "reason": ""},
]
UNLOADED = {"name": CLASSIFIER, "version": "", "state": "UNAVAILABLE", "reason": "unloaded"}


def failure(call, *args, **kwargs) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as raised:
        call(*args, **kwargs)
    return raised.value


def grpc_index(grpc_demo: GrpcServer) -> list[dict[str, str]]:
    """The gRPC index as the HTTP one is written (protobuf's JSON form omits empty strings)."""
    index = grpc_demo.grpc().get_model_repository_index(headers=KEY, as_json=True)
    fields = ("name", "version", "state", "reason")
    return [{f: row.get(f, "") for f in fields} for row in index.get("models", [])]


def grpc_ready_index(grpc_demo: GrpcServer) -> list[str]:
    """The names the index lists with ``ready`` set (a field tritonclient never sets)."""
    with grpc.insecure_channel(grpc_demo.address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.RepositoryIndexRequest(ready=True)
        response = stub.RepositoryIndex(request, metadata=tuple(KEY.items()))
    return [row.name for row in response.models]


@pytest.fixture
def restored(grpc_demo: GrpcServer) -> Iterator[GrpcServer]:
    """The shared server, with the classifier loaded again whatever the test left."""
    yield grpc_demo
    grpc_demo.http().load_model(CLASSIFIER, headers=KEY)
    assert grpc_demo.grpc().is_model_ready(CLASSIFIER)


def test_the_index_lists_both_demo_models_ready(grpc_demo: GrpcServer) -> None:
    assert grpc_demo.http().get_model_repository_index(headers=KEY) == READY
    assert grpc_index(grpc_demo) == READY


def test_unload_then_load_over_http(restored: GrpcServer) -> None:
    http, client = restored.http(), restored.grpc()
    http.unload_model(CLASSIFIER, headers=KEY, unload_dependents=True)
    assert http.get_model_repository_index(headers=KEY) == [UNLOADED, READY[1]]
    assert grpc_ready_index(restored) == [SEGMENTER]
    assert failure(http.infer, CLASSIFIER, [http_fp32(demo_inputs(0, 1))]).status() == "404"
    status = failure(client.infer, CLASSIFIER, [grpc_fp32(demo_inputs(0, 1))]).status()
    assert status == "StatusCode.NOT_FOUND"
    assert failure(http.unload_model, CLASSIFIER, headers=KEY).status() == "404"
    http.load_model(CLASSIFIER, headers=KEY)
    assert http.get_model_repository_index(headers=KEY) == READY
    assert http.infer(CLASSIFIER, [http_fp32(demo_inputs(0, 2))]).as_numpy("logits").shape[0] == 2


def test_unload_then_load_over_grpc(restored: GrpcServer) -> None:
    client = restored.grpc()
    client.unload_model(CLASSIFIER, headers=KEY, unload_dependents=True)
    assert grpc_index(restored) == [UNLOADED, READY[1]]
    assert not client.is_model_ready(CLASSIFIER)
    client.load_model(CLASSIFIER, headers=KEY)
    assert grpc_index(restored) == READY
    assert client.infer(CLASSIFIER, [grpc_fp32(demo_inputs(1, 1))]).as_numpy("logits").shape[0] == 1


def test_a_missing_or_wrong_key_is_refused(grpc_demo: GrpcServer) -> None:
    http, client = grpc_demo.http(), grpc_demo.grpc()
    for headers in (None, {"authorization": f"Bearer {API_KEY}x"}, {"authorization": API_KEY}):
        assert failure(http.get_model_repository_index, headers=headers).status() == "401"
        assert failure(http.unload_model, CLASSIFIER, headers=headers).status() == "401"
        assert failure(http.load_model, CLASSIFIER, headers=headers).status() == "401"
        refused = failure(client.get_model_repository_index, headers=headers)
        assert refused.status() == "StatusCode.UNAUTHENTICATED" and "Bearer" in refused.message()
    assert client.is_model_ready(CLASSIFIER)
    assert API_KEY not in grpc_demo.server.log()


def test_unknown_models_and_overrides_are_refused(grpc_demo: GrpcServer) -> None:
    http, client = grpc_demo.http(), grpc_demo.grpc()
    for call in (http.load_model, http.unload_model):
        assert failure(call, "no-such-model", headers=KEY).status() == "404"
    for call in (client.load_model, client.unload_model):
        assert failure(call, "no-such-model", headers=KEY).status() == "StatusCode.NOT_FOUND"
    # Triton's config override would replace what export wrote and checked: refused, not ignored
    refused = failure(http.load_model, CLASSIFIER, headers=KEY, config='{"max_batch_size": 1}')
    assert refused.status() == "400" and "'config'" in refused.message()
    refused = failure(client.load_model, CLASSIFIER, headers=KEY, files={"file:1/model.pt": b"x"})
    assert refused.status() == "StatusCode.INVALID_ARGUMENT"
    assert "file:1/model.pt" in refused.message()
    logits = client.infer(CLASSIFIER, [grpc_fp32(demo_inputs(2, 1))]).as_numpy("logits")
    assert np.isfinite(logits).all()


SERVED = ["binary_tensor_data", "classification", "schedule_policy", "statistics"]


def test_the_extension_is_advertised_only_with_a_key(
    grpc_demo: GrpcServer, demo_server: Server
) -> None:
    """Exactly the extensions implemented (each has its own tests), in both protocols."""
    assert grpc_demo.http().get_server_metadata()["extensions"] == [*SERVED, "model_repository"]
    grpc_metadata = grpc_demo.grpc().get_server_metadata(as_json=True)
    assert grpc_metadata["extensions"] == [*SERVED, "model_repository"]
    with demo_server.client() as client:
        assert client.get("/v2").json()["extensions"] == SERVED
        assert client.post("/v2/repository/index", headers=KEY).status_code == 404
        assert client.post(f"/v2/repository/models/{CLASSIFIER}/unload").status_code == 404
