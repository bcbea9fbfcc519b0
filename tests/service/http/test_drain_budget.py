"""SIGTERM with one slow upload in flight (issue 13, fix 6): the drain is one budget in
total, not the drain timeout and then uvicorn's graceful timeout again, and the unfinished
upload gets a JSON 503 rather than uvicorn's plain-text 500."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.service.raw_http import connect, read_json_answer
from tests.service.server import running_server

DRAIN_S = 3.0
#: the process's own shutdown after the drain (closing the models), on a loaded machine
EXIT_SLACK_S = 2.5


def test_a_slow_upload_gets_a_json_503_within_one_drain_budget(
    fault_repo: Path, tmp_path: Path
) -> None:
    env = {"ATTNSERVE_DRAIN_TIMEOUT_S": str(DRAIN_S)}
    with (
        running_server(fault_repo, tmp_path, env, wait="loaded") as server,
        connect(server.url, timeout_s=4 * DRAIN_S + 30) as sock,
    ):
        sock.sendall(
            b"POST /predict?model=faulty HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"\0" * 1000
        )
        time.sleep(0.3)  # the handler is waiting for the rest of the body, which never comes
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        answer = read_json_answer(sock)
        assert server.process.wait(timeout=4 * DRAIN_S + 30) == 0
        took = time.monotonic() - signalled
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), answer[:300]
        assert json.loads(body)["error"]["code"] == "unavailable"
        assert b"x-request-id" in head.lower()
        assert took < DRAIN_S + EXIT_SLACK_S, took
        assert "Traceback" not in server.log()
