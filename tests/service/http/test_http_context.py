"""Request ids, logs and CORS, seen from outside."""

import json
import time

from tests.service.conftest import CORS_ORIGIN
from tests.service.images import solid
from tests.service.server import Server

PNG = {"content-type": "image/png"}


def poll_log(server: Server, request_id: str, timeout_s: float = 10.0) -> dict:
    """The access line of ``request_id``: it is written just after the response is sent."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in server.log().splitlines():
            if line.startswith("{") and (entry := json.loads(line)).get("request_id") == request_id:
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no log line for request {request_id}:\n{server.log()[-2000:]}")


def test_request_id_is_echoed_or_generated(demo_server: Server) -> None:
    with demo_server.client() as client:
        given = client.get("/healthz", headers={"x-request-id": "trace-42"})
        fresh = client.get("/healthz")
        hostile = client.get("/healthz", headers={"x-request-id": "bad id\twith spaces"})
    assert given.headers["x-request-id"] == "trace-42"
    assert len(fresh.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] not in ("bad id\twith spaces", "")


def test_cors_is_off_by_default(demo_server: Server) -> None:
    with demo_server.client() as client:
        response = client.get("/models", headers={"origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_only_the_configured_origin(fault_server: Server) -> None:
    with fault_server.client() as client:
        allowed = client.get("/models", headers={"origin": CORS_ORIGIN})
        other = client.get("/models", headers={"origin": "http://elsewhere.example"})
    assert allowed.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "access-control-allow-origin" not in other.headers


def test_json_logs_carry_the_request_id_and_never_the_image(fault_server: Server) -> None:
    marker = b"attnserve-marker-bytes"
    with fault_server.client() as client:
        client.post("/predict?model=faulty", content=solid((1, 2, 3)) + marker, headers={
            **PNG, "x-request-id": "log-check-1"})  # fmt: skip
    access = poll_log(fault_server, "log-check-1")
    assert access["path"] == "/predict" and access["status"] == 200
    assert marker.decode() not in fault_server.log()
