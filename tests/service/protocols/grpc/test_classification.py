"""Triton's classification extension over HTTP v2 (binary and JSON) and gRPC: the same
"score:index:label" strings, the k best of the output asked for, and a clear error where an
output has no classes."""

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.service.protocols.grpc.conftest import GrpcServer
from tests.service.protocols.grpc.test_grpc_infer import (
    CLASSIFIER,
    SEGMENTER,
    demo_inputs,
    grpc_fp32,
    http_fp32,
)


def labels_of(grpc_demo: GrpcServer, model: str) -> list[str]:
    with grpc_demo.server.client() as client:
        models = client.get("/models").json()["models"]
    return next(m["config"]["labels"] for m in models if m["name"] == model)


def strings(array: np.ndarray) -> list[list[str]]:
    return [[v.decode() if isinstance(v, bytes) else v for v in row] for row in array]


def test_classification_is_the_same_over_every_protocol(grpc_demo: GrpcServer) -> None:
    data, k = demo_inputs(8, 3), 2
    over_grpc = grpc_demo.grpc().infer(
        CLASSIFIER,
        [grpc_fp32(data)],
        outputs=[
            grpcclient.InferRequestedOutput("probabilities", class_count=k),
            grpcclient.InferRequestedOutput("logits"),
        ],
    )
    answers = [strings(over_grpc.as_numpy("probabilities"))]
    for binary in (True, False):
        over_http = grpc_demo.http().infer(
            CLASSIFIER,
            [http_fp32(data)],
            outputs=[httpclient.InferRequestedOutput("probabilities", binary, class_count=k)],
        )
        answers.append(strings(over_http.as_numpy("probabilities")))
    assert answers[0] == answers[1] == answers[2]
    assert over_grpc.get_output("probabilities").datatype == "BYTES"

    logits, labels = over_grpc.as_numpy("logits"), labels_of(grpc_demo, CLASSIFIER)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for item, row in enumerate(answers[0]):
        assert len(row) == k
        best = np.argsort(-logits[item])[:k]
        for entry, index in zip(row, best, strict=True):
            score, position, label = entry.split(":")
            assert (int(position), label) == (index, labels[index])
            assert float(score) == pytest.approx(probabilities[item, index], abs=1e-5)


def test_more_classes_than_the_model_has_gives_them_all(grpc_demo: GrpcServer) -> None:
    result = grpc_demo.grpc().infer(
        CLASSIFIER,
        [grpc_fp32(demo_inputs(9, 1))],
        outputs=[grpcclient.InferRequestedOutput("logits", class_count=99)],
    )
    (row,) = strings(result.as_numpy("logits"))
    assert sorted(e.split(":")[2] for e in row) == sorted(labels_of(grpc_demo, CLASSIFIER))


def test_classification_of_an_output_without_classes_is_rejected(grpc_demo: GrpcServer) -> None:
    data = demo_inputs(10, 1)
    with pytest.raises(InferenceServerException) as over_grpc:
        grpc_demo.grpc().infer(
            SEGMENTER, [grpc_fp32(data)], outputs=[grpcclient.InferRequestedOutput("mask", 2)]
        )
    assert over_grpc.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "classification applies to" in over_grpc.value.message()
    with pytest.raises(InferenceServerException, match="classification applies to") as over_http:
        grpc_demo.http().infer(
            SEGMENTER,
            [http_fp32(data)],
            outputs=[httpclient.InferRequestedOutput("mask", class_count=2)],
        )
    assert over_http.value.status() == "400"


def test_server_metadata_advertises_the_extension(grpc_demo: GrpcServer) -> None:
    assert "classification" in grpc_demo.grpc().get_server_metadata(as_json=True)["extensions"]
    assert "classification" in grpc_demo.http().get_server_metadata()["extensions"]
