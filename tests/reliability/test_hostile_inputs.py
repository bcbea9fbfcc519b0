"""Every hostile or broken input gets its documented status and a message a client can act on;
odd but valid images are served; afterwards the server is healthy, still right, and small."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.reliability.conftest import API_KEY, Summary
from tests.reliability.corpus import images as img
from tests.reliability.hostile_inputs import CASES, CLASSIFIER, Case, error_message
from tests.reliability.load import read_json_answer
from tests.reliability.process import footprint
from tests.service.server import DemoServers, Server

UPLOAD_LIMIT = 1_000_000
#: Resident memory the corpus may add to a warm server. Decoding the 65535^2 PNG bomb alone
#: would take 4 GiB (1-bit) to 12 GiB (as RGB), so any bomb that got through would show.
RSS_GROWTH_BOUND_MB = 300
SOCKET_TIMEOUT_S = 30.0
OUTCOMES: dict[str, bool] = {}  # case -> handled as expected


@pytest.fixture(scope="module")
def server(demo_servers: DemoServers) -> Server:
    env = {"ATTNSERVE_API_KEY": API_KEY, "ATTNSERVE_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)}
    server = demo_servers.shared(env)
    server.rss_before_mb = footprint(server.process.pid).rss_mb  # type: ignore[attr-defined]
    return server


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input(server: Server, case: Case) -> None:
    with server.client() as client:
        response = case.send(client)
    OUTCOMES[case.name] = False
    assert response.status_code == case.status, response.text[:500]
    if case.status == 200:
        if case.check is not None:
            case.check(response.json())
    else:
        assert case.message in error_message(response), response.text[:500]
        if case.status == 503:
            assert response.headers.get("retry-after")
    OUTCOMES[case.name] = True


def raw_exchange(server: Server, head: bytes, chunks: Iterator[bytes]) -> bytes:
    """Send ``head`` and then ``chunks`` (stopping early if the server answers or closes), and
    return the whole answer; the server must answer without the rest of the body."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(head)
        for chunk in chunks:
            sock.sendall(chunk)
        return read_json_answer(sock)


def test_declared_oversized_body_is_refused_unread(server: Server) -> None:
    """Content-Length 10x the limit, then only 1 kB of it: the 413 must come without the rest
    (which is never sent, so a server that waited for it would time the socket out)."""
    head = (
        f"POST /predict?model={CLASSIFIER} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        f"Content-Length: {10 * UPLOAD_LIMIT}\r\n\r\n"
    ).encode()
    answer = raw_exchange(server, head, iter([b"\0" * 1024]))
    OUTCOMES["declared oversized body"] = False
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"upload limit" in answer
    OUTCOMES["declared oversized body"] = True


def test_streamed_oversized_body_is_cut_off(server: Server) -> None:
    """A chunked body with no declared size: the server stops reading once past the limit and
    answers 413 while the client has not finished (no terminating chunk is ever sent)."""
    head = (
        f"POST /predict?model={CLASSIFIER} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = b"\0" * 65536
    count = UPLOAD_LIMIT // len(piece) + 2  # just past the limit
    sent = iter([b"%x\r\n" % len(piece) + piece + b"\r\n"] * count)
    answer = raw_exchange(server, head, sent)
    OUTCOMES["streamed oversized body"] = False
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"upload limit" in answer
    OUTCOMES["streamed oversized body"] = True


def test_after_the_corpus_the_server_is_healthy_right_and_small(
    server: Server, summary: Summary
) -> None:
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        for index in range(3):
            data, label = img.shape_sample(index)
            response = client.post("/predict", content=data, params={"model": CLASSIFIER},
                                   headers={"content-type": "image/png"})  # fmt: skip
            assert response.status_code == 200, response.text
            assert response.json()["results"][0]["predictions"][0]["label"] == label
    before = server.rss_before_mb  # type: ignore[attr-defined]
    after = footprint(server.process.pid).rss_mb
    handled = sum(OUTCOMES.values())
    summary.add(
        "hostile input", "cases tried / handled as expected", f"{len(OUTCOMES)} / {handled}"
    )
    summary.add("hostile input", "server RSS before -> after (MB)", f"{before:.0f} -> {after:.0f}")
    assert after - before < RSS_GROWTH_BOUND_MB, (before, after)
    assert "Traceback" not in server.log(), server.log()[-3000:]
