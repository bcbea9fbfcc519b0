"""An error no handler answers (issue 13, fix 8): a JSON 500 that carries the request id, and
one traceback in the log, on a line that carries the same id. Before, the catch-all ran outside
the request context: no X-Request-ID, and the log line's id was ``-``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx

from service.http.app import create_app
from service.logs import RequestIdFilter
from service.settings import Settings


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_an_unexpected_error_is_a_json_500_with_its_request_id(tmp_path: Path) -> None:
    app = create_app(Settings(device="cpu"), tmp_path)

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    records = Records()
    logging.getLogger().addHandler(records)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/broken", headers={"x-request-id": "broken-1"})

    try:
        response = asyncio.run(call())
    finally:
        logging.getLogger().removeHandler(records)
        app.state.attnserve.pipeline.close()
        app.state.attnserve.postprocess_pool.shutdown()
    assert response.status_code == 500
    assert response.headers.get("x-request-id") == "broken-1"
    assert response.json()["error"] == {
        "code": "internal_error",
        "message": "internal error: RuntimeError",
    }
    tracebacks = [record for record in records.records if record.exc_info]
    assert len(tracebacks) == 1, tracebacks
    assert tracebacks[0].request_id == "broken-1"  # type: ignore[attr-defined]
