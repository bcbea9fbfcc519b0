"""Triton's statistics extension over gRPC (ModelStatistics), read by ``tritonclient.grpc``: the
counts of gRPC traffic, NOT_FOUND for unknown models, and the same numbers as over HTTP."""

import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import service_pb2

from tests.service.protocols.grpc.conftest import API_KEY, GrpcServer
from tests.service.protocols.grpc.test_grpc_errors import status_of
from tests.service.protocols.grpc.test_grpc_infer import CLASSIFIER, grpc_fp32
from tests.service.protocols.passes import passes_by_size


def test_grpc_counts_and_http_agree(grpc_demo: GrpcServer) -> None:
    client = grpc_demo.grpc()
    before = client.get_inference_statistics(CLASSIFIER, "1").model_stats[0]
    sizes = [2, 1, 4]
    for size in sizes:
        client.infer(CLASSIFIER, [grpc_fp32(np.zeros((size, 3, 64, 64), dtype=np.float32))])
    response = client.get_inference_statistics(CLASSIFIER, "1")
    (after,) = response.model_stats
    assert (after.name, after.version) == (CLASSIFIER, "1")
    assert after.inference_count - before.inference_count == sum(sizes)
    passes = passes_by_size(sizes)  # [1, 1], [1], [2, 2] with 2 instances
    assert after.execution_count - before.execution_count == sum(passes.values()) == 5
    stats, old = after.inference_stats, before.inference_stats
    assert stats.success.count - old.success.count == len(sizes)
    assert stats.fail.count == old.fail.count
    assert 0 < stats.queue.ns <= stats.success.ns
    assert stats.compute_infer.count == stats.success.count
    sizes_seen = {b.batch_size: b.compute_infer.count for b in after.batch_stats}
    assert set(passes) <= set(sizes_seen)

    # the same server over HTTP, with no request in between: the same numbers
    over_http = grpc_demo.http().get_inference_statistics(CLASSIFIER, "1")
    assert json_format.ParseDict(over_http, service_pb2.ModelStatisticsResponse()) == response


def test_an_expired_request_is_a_fail(grpc_demo: GrpcServer) -> None:
    client = grpc_demo.grpc()
    before = client.get_inference_statistics(CLASSIFIER, "1").model_stats[0]
    image = grpc_fp32(np.zeros((1, 3, 64, 64), dtype=np.float32))
    status, _ = status_of(client.infer, CLASSIFIER, [image], timeout=1)  # Triton's, in us
    assert status == "StatusCode.DEADLINE_EXCEEDED"
    after = client.get_inference_statistics(CLASSIFIER, "1").model_stats[0]
    assert after.inference_stats.fail.count == before.inference_stats.fail.count + 1
    assert after.inference_stats.success.count == before.inference_stats.success.count
    assert after.inference_count == before.inference_count


def test_every_model_when_none_is_named_and_unknown_ones(grpc_demo: GrpcServer) -> None:
    client = grpc_demo.grpc()
    names = {entry.name for entry in client.get_inference_statistics().model_stats}
    assert names >= {CLASSIFIER, "shapes-segmenter"}
    status, message = status_of(client.get_inference_statistics, "no-such-model")
    assert status == "StatusCode.NOT_FOUND" and "no-such-model" in message
    status, message = status_of(client.get_inference_statistics, CLASSIFIER, "9")
    assert status == "StatusCode.NOT_FOUND" and "no version 9" in message
    assert "statistics" in client.get_server_metadata().extensions


def test_a_reload_starts_the_version_afresh(grpc_demo: GrpcServer) -> None:
    """As in Triton: the statistics belong to one load of the version."""
    client = grpc_demo.grpc()
    client.infer(CLASSIFIER, [grpc_fp32(np.zeros((1, 3, 64, 64), dtype=np.float32))])
    assert client.get_inference_statistics(CLASSIFIER, "1").model_stats[0].inference_count > 0
    client.load_model(CLASSIFIER, headers={"authorization": f"Bearer {API_KEY}"})
    (fresh,) = client.get_inference_statistics(CLASSIFIER, "1").model_stats
    assert (fresh.inference_count, fresh.execution_count, fresh.last_inference) == (0, 0, 0)
    assert fresh.inference_stats.success.count == 0 and not fresh.batch_stats
