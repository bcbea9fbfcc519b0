"""Triton's ``schedule_policy`` extension against a real server, with the official clients:
``priority`` orders the queue of a model with ``priority_levels`` (a flood at the lowest level
delays a high-priority request by at most the batch already running), an out-of-range
priority is 400 / INVALID_ARGUMENT, and ``timeout`` (microseconds) is 504 / DEADLINE_EXCEEDED
over both protocols."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from bench.servers import free_port
from models.repository.config import read_config
from models.repository.layout import config_path
from tests.conftest import DemoBuild
from tests.service.fake_models import SIZE, priority_repository
from tests.service.images import solid
from tests.service.protocols.grpc.conftest import GrpcServer, grpc_env
from tests.service.protocols.grpc.test_grpc_infer import grpc_fp32, http_fp32
from tests.service.server import Server, running_server

BATCH = 2  # the models' max_batch_size
FLOOD = 5 * BATCH  # low-priority requests, bounded
ROUNDS = 60  # 0.3 s a batch on an idle machine: far longer than one request takes to queue
POLL_S = 0.01
ANSWER_TIMEOUT_S = 300.0  # a loaded machine computes the flood slowly; the order is the same
INPUT = np.zeros((1, 3, SIZE, SIZE), dtype=np.float32)


@pytest.fixture(scope="module")
def ranked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    repo = priority_repository(tmp_path_factory.mktemp("priority"), ROUNDS, BATCH)
    port = free_port()
    logs = tmp_path_factory.mktemp("priority-logs")
    env = grpc_env(port, ATTNSERVE_TIMEOUT_MS=str(ANSWER_TIMEOUT_S * 1000))
    with running_server(repo, logs, env) as server:
        yield GrpcServer(server, f"127.0.0.1:{port}")


@dataclass
class Answers:
    """When each asynchronous request was answered, by name, in the order they came."""

    expected: int
    order: list[tuple[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    all_in: threading.Event = field(default_factory=threading.Event)

    def callback(self, name: str):
        def record(result: object, error: InferenceServerException | None) -> None:
            with self.lock:
                self.order.append((name, time.monotonic()))
                if error is not None:
                    self.errors.append(f"{name}: {error}")
                if len(self.order) == self.expected:
                    self.all_in.set()

        return record


def wait_for_a_fresh_batch(grpc_server: GrpcServer, model: str) -> int:
    """Wait until the whole flood is queued or computing, then until a batch has just been
    taken from the queue (its depth drops): the high-priority request is then sent a whole
    batch time before the worker frees up. Returns the depth left queued."""
    server, deadline = grpc_server.server, time.monotonic() + ANSWER_TIMEOUT_S
    depth = server.metric("attnserve_queue_depth", model=model)
    while depth < FLOOD - BATCH:
        assert time.monotonic() < deadline, "the flood never queued up"
        time.sleep(POLL_S)
        depth = server.metric("attnserve_queue_depth", model=model)
    while (now := server.metric("attnserve_queue_depth", model=model)) >= depth:
        assert time.monotonic() < deadline and now > 0, "no batch was taken from the queue"
        depth = now
        time.sleep(POLL_S)
    return int(now)


def overtaken_by(grpc_server: GrpcServer, model: str) -> tuple[int, int]:
    """Flood ``model`` with default-priority requests, then send one at priority 1; returns
    how many flood requests were answered after it was sent and before its answer, and how
    many were still queued when it was sent."""
    client = grpc_server.grpc()
    answers = Answers(expected=FLOOD + 1)
    for index in range(FLOOD):
        client.async_infer(model, [grpc_fp32(INPUT)], answers.callback(f"low{index}"),
                           client_timeout=ANSWER_TIMEOUT_S)  # fmt: skip
    queued = wait_for_a_fresh_batch(grpc_server, model)
    sent = time.monotonic()
    client.async_infer(model, [grpc_fp32(INPUT)], answers.callback("high"), priority=1,
                       client_timeout=ANSWER_TIMEOUT_S)  # fmt: skip
    assert answers.all_in.wait(ANSWER_TIMEOUT_S), "the requests were not all answered"
    client.close()
    assert answers.errors == []
    high = [name for name, _ in answers.order].index("high")
    return sum(at >= sent for _, at in answers.order[:high]), queued


def test_a_flood_at_the_lowest_level_delays_a_high_priority_request_by_one_batch(
    ranked_server: GrpcServer,
) -> None:
    """Answered after at most the batch running when it arrived and the requests that share
    its own batch (they complete together): never after the rest of the flood."""
    overtaken, queued = overtaken_by(ranked_server, "ranked")
    assert queued >= 2 * BATCH  # the flood really was waiting ahead of it
    assert overtaken <= 2 * BATCH - 1


def test_with_priorities_ignored_the_same_flood_delays_it_to_the_end(
    ranked_server: GrpcServer,
) -> None:
    """The check above fails where the queue is one FIFO ("unranked": no priority_levels):
    the priority-1 request then waits for every flood request queued before it."""
    overtaken, queued = overtaken_by(ranked_server, "unranked")
    assert overtaken >= queued > 2 * BATCH - 1


def test_an_out_of_range_priority_is_refused_over_both_protocols(
    ranked_server: GrpcServer,
) -> None:
    http, grpc = ranked_server.http(), ranked_server.grpc()
    for priority in (1, 2):  # 0 (the default level) runs in the flood tests
        assert http.infer("ranked", [http_fp32(INPUT)], priority=priority).as_numpy("logits").shape
        assert grpc.infer("ranked", [grpc_fp32(INPUT)], priority=priority).as_numpy("logits").shape
    with pytest.raises(InferenceServerException) as raised:
        http.infer("ranked", [http_fp32(INPUT)], priority=3)
    assert raised.value.status() == "400" and "2 priority level(s)" in raised.value.message()
    with pytest.raises(InferenceServerException) as raised:
        http.infer("unranked", [http_fp32(INPUT)], priority=2)
    assert raised.value.status() == "400" and "1 priority level(s)" in raised.value.message()
    with pytest.raises(InferenceServerException) as raised:
        http.infer("ranked", [http_fp32(INPUT)], priority=-1)
    assert raised.value.status() == "400" and "non-negative integer" in raised.value.message()
    with pytest.raises(InferenceServerException) as raised:
        grpc.infer("ranked", [grpc_fp32(INPUT)], priority=3)
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "out of range" in raised.value.message()
    tensor = {"name": "input", "datatype": "FP32", "shape": list(INPUT.shape),
              "data": INPUT.ravel().tolist()}  # fmt: skip
    body = {"inputs": [tensor], "parameters": {"priority": "high"}}
    url = f"{ranked_server.server.url}/v2/models/ranked/infer"
    response = httpx.post(url, json=body, timeout=30.0)
    assert response.status_code == 400 and "'priority'" in response.json()["error"]


def test_predict_takes_a_priority_too(ranked_server: GrpcServer) -> None:
    url = f"{ranked_server.server.url}/predict"
    headers = {"content-type": "image/png"}
    for priority, status in ((1, 200), (3, 400), (-1, 422)):
        params = {"model": "ranked", "priority": priority}
        response = httpx.post(url, params=params, content=solid((9, 9, 9)), headers=headers,
                              timeout=30.0)  # fmt: skip
        assert response.status_code == status, response.text


def test_a_timeout_in_microseconds_is_deadline_exceeded_over_both_protocols(
    ranked_server: GrpcServer,
) -> None:
    http, grpc = ranked_server.http(), ranked_server.grpc()
    with pytest.raises(InferenceServerException) as raised:
        http.infer("ranked", [http_fp32(INPUT)], timeout=1)
    assert raised.value.status() == "504" and "deadline" in raised.value.message()
    with pytest.raises(InferenceServerException) as raised:
        grpc.infer("ranked", [grpc_fp32(INPUT)], timeout=1)
    assert raised.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    # microseconds, not milliseconds: 30 s is plenty, the tighter client deadline too
    assert http.infer("ranked", [http_fp32(INPUT)], timeout=30_000_000).as_numpy("logits").shape
    assert grpc.infer("ranked", [grpc_fp32(INPUT)], timeout=30_000_000, client_timeout=30.0)


def test_v2_advertises_the_schedule_policy_extension(ranked_server: GrpcServer) -> None:
    assert "schedule_policy" in ranked_server.http().get_server_metadata()["extensions"]
    assert "schedule_policy" in ranked_server.grpc().get_server_metadata(as_json=True)["extensions"]


def test_the_demo_models_have_two_priority_levels(demo_build: DemoBuild, demo_server: Server):
    """So users can try ``priority=1``; requests that send none run at level 2."""
    client = httpclient.InferenceServerClient(demo_server.url.removeprefix("http://"))
    demo_input = np.zeros((1, 3, 64, 64), dtype=np.float32)
    for name in ("shapes-classifier", "shapes-segmenter"):
        batching = read_config(config_path(demo_build.repo, name)).batching
        assert (batching.priority_levels, batching.default_priority_level) == (2, 2)
        assert client.infer(name, [http_fp32(demo_input)], priority=1).as_numpy("logits").size
        with pytest.raises(InferenceServerException) as raised:
            client.infer(name, [http_fp32(demo_input)], priority=3)
        assert raised.value.status() == "400" and "2 priority level(s)" in raised.value.message()
