"""The gRPC listener's life: off unless configured, and a port it cannot bind stops the process
at once with one line (never an HTTP-only server that looks healthy)."""

import os
import socket
import subprocess

import pytest

from service.settings import Settings
from tests.conftest import ATTNSERVE, DemoBuild
from tests.service.server import Server

FAIL_TIMEOUT_S = 120


def test_grpc_is_off_by_default(monkeypatch: pytest.MonkeyPatch, demo_server: Server) -> None:
    monkeypatch.delenv("ATTNSERVE_GRPC_PORT", raising=False)
    assert Settings().grpc_port == 0
    assert "gRPC" not in demo_server.log()
    assert "uvicorn running" in demo_server.log().lower()


def test_a_taken_grpc_port_stops_the_process(demo_build: DemoBuild) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            http_port = free.getsockname()[1]
        environment = {**os.environ, "ATTNSERVE_GRPC_PORT": str(port)}
        command = [ATTNSERVE, "serve", "--repo", str(demo_build.repo), "--port", str(http_port),
                   "--device", "cpu"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, env=environment,
                                timeout=FAIL_TIMEOUT_S, check=False)  # fmt: skip
    assert result.returncode == 1
    assert f"attnserve serve: error: Failed to bind to address 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
