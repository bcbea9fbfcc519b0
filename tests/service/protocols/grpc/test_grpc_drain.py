"""SIGTERM over gRPC: readiness turns false and new calls are UNAVAILABLE at once, while the
call already admitted is answered; then the process exits 0."""

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from bench.servers import free_port
from tests.service.fake_models import SIZE, slow_repository
from tests.service.protocols.grpc.conftest import grpc_env
from tests.service.server import running_server

pytestmark = pytest.mark.slow


def slow_input() -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("input", [1, 3, SIZE, SIZE], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3, SIZE, SIZE), dtype=np.float32))
    return tensor


def test_sigterm_drains_grpc_calls(tmp_path: Path) -> None:
    repo = slow_repository(tmp_path / "repo", rounds=200)  # about 1 s a batch here
    port = free_port()
    env = grpc_env(port, ATTNSERVE_DRAIN_TIMEOUT_S="30")
    with running_server(repo, tmp_path, env) as server:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_ready()
        answers: list[object] = []
        in_flight = threading.Thread(
            target=lambda: answers.append(client.infer("slow", [slow_input()]))
        )
        in_flight.start()
        time.sleep(0.1)
        server.process.send_signal(15)
        time.sleep(0.1)
        assert not client.is_server_ready()
        with pytest.raises(InferenceServerException) as refused:
            client.infer("slow", [slow_input()])
        assert refused.value.status() == "StatusCode.UNAVAILABLE"
        in_flight.join(timeout=60)
        assert answers and answers[0].as_numpy("logits").shape == (1, 2)
        assert server.process.wait(timeout=60) == 0
