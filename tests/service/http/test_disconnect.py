"""A client that leaves is noticed by the one ``receive()`` that waits for its disconnect
(service/protocols/disconnect.py): its queued image is dropped, never computed, and counted
as a 499; the watch itself is a flag that a listener task sets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from starlette.requests import Request

from service.protocols.disconnect import DisconnectWatch
from tests.service.fake_models import Slow, write_model
from tests.service.images import solid
from tests.service.raw_http import connect
from tests.service.server import Server, running_server

SLOW_ROUNDS = 400  # about 2 s a batch here: the second request is queued for that long
CLIENTS = 5
WAIT_S = 60.0  # for each step the server takes; a loaded machine is slow, never this slow


def watch_of(messages: list[dict[str, Any]]) -> tuple[DisconnectWatch, list[int]]:
    """A watch over a fake ASGI ``receive`` that yields ``messages`` and then blocks."""
    calls: list[int] = []

    async def receive() -> dict[str, Any]:
        calls.append(len(calls))
        if len(calls) <= len(messages):
            return messages[len(calls) - 1]
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return DisconnectWatch(Request({"type": "http"}, receive)), calls


def test_the_watch_is_set_by_the_disconnect_message_only() -> None:
    async def scenario() -> list[bool]:
        trailing = {"type": "http.request", "body": b"", "more_body": False}
        watch, _ = watch_of([trailing, {"type": "http.disconnect"}])
        seen = [await watch.is_disconnected()]  # not entered: the body is still arriving
        async with watch:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            seen.append(await watch.is_disconnected())
        return seen

    assert asyncio.run(scenario()) == [False, True]


def test_a_client_that_stays_is_never_gone_and_the_listener_ends_with_the_request() -> None:
    async def scenario() -> tuple[bool, int, int]:
        watch, calls = watch_of([])
        async with watch:
            for _ in range(5):
                await asyncio.sleep(0)
            gone = await watch.is_disconnected()
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "disconnect-watch"]
        return gone or await watch.is_disconnected(), len(calls), len(tasks)

    # one receive() in all, however often the engine asks; no listener outlives the request,
    # and stopping it does not say the client left (what follows, e.g. encoding, still runs)
    assert asyncio.run(scenario()) == (False, 1, 0)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # batches of one: the second image can only ever wait behind the first, never join it
    repo = tmp_path_factory.mktemp("disconnect") / "repo"
    write_model(repo, "slow", Slow(SLOW_ROUNDS), max_batch_size=1)
    with running_server(repo, tmp_path_factory.mktemp("disconnect-logs")) as server:
        yield server


def test_clients_that_leave_while_queued_are_dropped_never_computed(slow_server: Server) -> None:
    """Five clients send an image each and leave once all five are decoded: one batch of one
    at a time, about 2 s each, so all but the first one or two are still queued. Each image is
    either computed or dropped, never both and never lost; with a watch that never hears the
    disconnect (a broken copy) nothing is dropped and all five are computed."""

    def metric(name: str, **labels: str) -> float:
        return slow_server.metric(name, **labels)

    decoded = "attnserve_preprocess_duration_seconds_count"
    counted = ("attnserve_batch_size_count", "attnserve_requests_dropped_total", decoded)
    batches, dropped, started = (metric(name) for name in counted)
    image = solid((20, 30, 40))
    head = ("POST /predict?model=slow HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(image)}\r\n\r\n").encode()  # fmt: skip
    with ExitStack() as sockets:
        for _ in range(CLIENTS):
            sockets.enter_context(connect(slow_server.url)).sendall(head + image)
        assert slow_server.wait_for_metric(decoded, started + CLIENTS, WAIT_S) == started + CLIENTS
    # every client has left: the queued images are dropped, the one computing finishes
    assert slow_server.wait_for_metric("attnserve_queue_depth", 0, WAIT_S) == 0
    assert slow_server.wait_for_metric("attnserve_inflight_requests", 0, WAIT_S) == 0
    computed, gone = metric("attnserve_batch_size_count") - batches, metric(counted[1]) - dropped
    assert gone >= 1 and computed + gone == CLIENTS, (computed, gone)
