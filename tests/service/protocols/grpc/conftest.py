"""The demo server with gRPC on (and an API key), shared by the gRPC tests; they talk to it as
users do, with ``tritonclient.grpc`` (never importing the service's own protobuf modules, whose
``inference.*`` names would clash with tritonclient's in this process)."""

from dataclasses import dataclass

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from bench.servers import free_port
from tests.service.server import DemoServers, Server

API_KEY = "grpc-test-key-91c2"
UPLOAD_LIMIT = 1_000_000
PIXEL_LIMIT = 200_000


@dataclass(frozen=True)
class GrpcServer:
    server: Server
    address: str  # host:port of its gRPC listener

    def grpc(self) -> grpcclient.InferenceServerClient:
        return grpcclient.InferenceServerClient(self.address)

    def http(self) -> httpclient.InferenceServerClient:
        return httpclient.InferenceServerClient(self.server.url.removeprefix("http://"))


def grpc_env(port: int, **extra: str) -> dict[str, str]:
    return {"ATTNSERVE_GRPC_PORT": str(port), **extra}


@pytest.fixture(scope="session")
def grpc_demo(demo_servers: DemoServers) -> GrpcServer:
    port = free_port()
    env = grpc_env(
        port,
        ATTNSERVE_API_KEY=API_KEY,
        ATTNSERVE_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT),
        ATTNSERVE_MAX_IMAGE_PIXELS=str(PIXEL_LIMIT),
    )
    return GrpcServer(demo_servers.shared(env), f"127.0.0.1:{port}")
