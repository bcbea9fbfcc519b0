"""What an HTTP client library will not send, over raw sockets (issue 13, fixes 7 and 9):
bodies cut short, broken chunked framing, oversized request heads. A client that leaves is a
499, a broken framing a JSON 400, an oversized head a 431 (or 414 for the URL); none of them
is a 500 or leaves a traceback."""

from __future__ import annotations

import json
import time

import pytest

from tests.service.raw_http import connect, exchange, pieces
from tests.service.server import Server

METRIC = "attnserve_requests_total"
COUNTED_WITHIN_S = 10.0
PREDICT_HEAD = "POST /predict?model=faulty HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"


def wait_for_count(server: Server, status: str, expected: float) -> float:
    """The request counter of ``status`` once it reaches ``expected`` (it is counted after the
    server notices the client is gone), or its value after the bounded wait."""
    return server.wait_for_metric(METRIC, expected, COUNTED_WITHIN_S, status=status)


def status_and_body(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_a_client_that_leaves_mid_body_is_a_499_without_a_traceback(fault_server: Server) -> None:
    """Content-Length 100000, 1,000 bytes sent, then the connection closed: was a 500 with two
    tracebacks, for every slowloris connection that gave up."""
    before = {s: fault_server.metric(METRIC, status=s) for s in ("499", "500")}
    log_start = len(fault_server.log())
    with connect(fault_server.url) as sock:
        sock.sendall(f"{PREDICT_HEAD}Content-Length: 100000\r\n\r\n".encode() + b"\0" * 1000)
        time.sleep(0.2)  # the handler is reading the body
    assert wait_for_count(fault_server, "499", before["499"] + 1) == before["499"] + 1
    assert fault_server.metric(METRIC, status="500") == before["500"]
    assert "Traceback" not in fault_server.log()[log_start:]


@pytest.mark.parametrize("chunk_size", [b"zz", b"%x" % 2**80, b"-5"], ids=["zz", "2^80", "-5"])
def test_broken_chunked_framing_is_a_json_400(fault_server: Server, chunk_size: bytes) -> None:
    before = {s: fault_server.metric(METRIC, status=s) for s in ("400", "500")}
    log_start = len(fault_server.log())
    head = f"{PREDICT_HEAD}Transfer-Encoding: chunked\r\n\r\n".encode()
    status, body = status_and_body(exchange(fault_server.url, head, [chunk_size + b"\r\nab\r\n"]))
    assert status == 400 and "malformed HTTP request" in body["error"]["message"], body
    assert wait_for_count(fault_server, "400", before["400"] + 1) == before["400"] + 1
    assert fault_server.metric(METRIC, status="500") == before["500"]
    assert "Traceback" not in fault_server.log()[log_start:]


def request_head(path: str = "/healthz", headers: list[tuple[str, str]] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: x", *(f"{n}: {v}" for n, v in headers or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("head", "status", "message"),
    [
        (request_head(headers=[("X-Big", "a" * 1_000_000)]), 431, "over the limit"),
        (request_head(headers=[(f"X-H{i}", "v") for i in range(5000)]), 431, "more than 100"),
        (request_head(headers=[("X-Big", "a" * 9000)]), 431, "header 'X-Big'"),
        (request_head(headers=[(f"X-H{i}", "v" * 1000) for i in range(80)]), 431, "request head"),
        (request_head("/healthz?" + "q" * 10_000), 414, "URL of"),
    ],
    ids=["1 MB header", "5000 headers", "9 kB header", "80 kB of headers", "10 kB URL"],
)
def test_oversized_request_heads_are_refused(
    demo_server: Server, head: bytes, status: int, message: str
) -> None:
    answer = exchange(demo_server.url, b"", pieces(head))
    got, body = status_and_body(answer)
    assert got == status and message in body["error"]["message"], answer[:300]
    assert b"x-request-id" in answer.lower()


def test_heads_within_the_limits_are_served(demo_server: Server) -> None:
    for head in (
        request_head(headers=[("X-Big", "a" * 8000)]),
        request_head(headers=[(f"X-H{i}", "v" * 500) for i in range(98)]),
        request_head("/healthz?" + "q" * 8000),
    ):
        answer = exchange(demo_server.url, b"", pieces(head))
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
