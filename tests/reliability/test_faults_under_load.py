"""Faults under concurrent load: a model that raises on some inputs, models loaded, reloaded to
a new version and unloaded while traffic runs, and SIGTERM in the middle of it."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.client import Pool, Reply, build_request
from tests.reliability.conftest import API_KEY, Summary
from tests.reliability.load import Timed, manage, send_all, traffic_during
from tests.service.fake_models import FLIP_LABEL, add_flip_version, faults_repository
from tests.service.images import solid
from tests.service.raw_http import read_json_answer
from tests.service.server import Server, running_server

WHITE, DARK = solid((255, 255, 255)), solid((20, 30, 40))
PNG = {"Content-Type": "image/png"}
AUTH = {"Authorization": f"Bearer {API_KEY}"}
DRAIN_TIMEOUT_S = 20
USERS = 12
ADMIT_GRACE_S = 0.1


def predict(model: str, image: bytes = DARK) -> bytes:
    return build_request("POST", f"/predict?model={model}", image, PNG)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return faults_repository(tmp_path_factory.mktemp("faults-under-load") / "repo", slow_rounds=6)


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[Server]:
    env = {"ATTNSERVE_API_KEY": API_KEY, "ATTNSERVE_NUM_THREADS": "1"}
    with running_server(repo, repo.parent, env) as server:
        yield server


def test_a_model_that_raises_fails_only_those_requests(server: Server, summary: Summary) -> None:
    images = [WHITE if i % 4 == 0 else DARK for i in range(400)]
    replies = asyncio.run(send_pool(server, [predict("faulty", i) for i in images], USERS))
    for image, reply in zip(images, replies, strict=True):
        assert reply.failure is None, reply
        if image is WHITE:
            assert reply.status == 500, reply.body[:300]
            assert b"poisoned input" in reply.body
        else:
            assert reply.status == 200, reply.body[:300]
    batch_sizes = [json.loads(r.body)["results"][0]["batch_size"] for r in replies
                   if r.status == 200]  # fmt: skip
    assert max(batch_sizes) > 1, "no batching happened: batch-mates were not tested"
    with server.client() as client:
        assert client.post("/predict", params={"model": "faulty"}, content=DARK,
                           headers=PNG).status_code == 200  # fmt: skip
    summary.add("faults", "poisoned / good requests under load",
                f"{images.count(WHITE)} x 500 / {len(images) - images.count(WHITE)} x 200 "
                f"(batches up to {max(batch_sizes)})")  # fmt: skip


async def send_pool(server: Server, requests: list[bytes], concurrency: int) -> list[Reply]:
    pool = Pool(server.url)
    try:
        return await send_all(pool, requests, concurrency)
    finally:
        await pool.close()


async def flip_traffic(server: Server, action: asyncio.Task) -> list[Timed]:
    """Closed-loop traffic to "flip" around ``action`` (see :func:`load.traffic_during`)."""
    pool = Pool(server.url)
    try:
        return await traffic_during(pool, lambda _: predict("flip"), USERS, action)
    finally:
        await pool.close()


def check_consistent(log: list) -> set[int]:
    """Every 200 came from a real version of flip and carries that version's answer."""
    versions = set()
    for _, _, reply in log:
        if reply.status == 200:
            body = json.loads(reply.body)
            version, label = body["version"], body["results"][0]["predictions"][0]["label"]
            assert body["model"] == "flip" and label == FLIP_LABEL[version], body
            versions.add(version)
    return versions


def test_reload_and_unload_under_traffic(server: Server, repo: Path, summary: Summary) -> None:
    add_flip_version(repo, 2)

    async def scenario() -> tuple[list, list, list, list[httpx.Response]]:
        actions = []
        logs = []
        for verb in ("reload", "unload", "load"):
            action = asyncio.create_task(manage(server.url, f"/models/flip/{verb}", AUTH))
            logs.append(await flip_traffic(server, action))
            actions.append(action.result())
        return *logs, actions

    reload_log, unload_log, load_log, answers = asyncio.run(scenario())
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    for log in (reload_log, unload_log, load_log):
        assert all(reply.failure is None for _, _, reply in log), "transport failures"
    # reload: nothing lost, both versions served, v2 once it returned
    lost = [(r.status, r.body[:200]) for _, _, r in reload_log if r.status != 200]
    assert not lost, lost
    assert check_consistent(reload_log) == {1, 2}
    assert {
        json.loads(r.body)["version"] for sent, _, r in reload_log if sent > 0 and r.status == 200
    } == {2}
    # unload: what was in flight is answered (or 503 if it was retired while queued), then the
    # model is gone (404)
    assert {r.status for _, _, r in unload_log} <= {200, 404, 503}
    check_consistent(unload_log)
    assert {r.status for sent, _, r in unload_log if sent > 0} == {404}
    # load again: served by version 2
    assert {r.status for sent, _, r in load_log if sent > 0} == {200}
    assert check_consistent(load_log) >= {2}
    total = sum(len(log) for log in (reload_log, unload_log, load_log))
    summary.add("faults", "reload / unload / load under traffic",
                f"{total} requests, 0 lost, 0 answered by a wrong version")  # fmt: skip


def test_sigterm_under_load(repo: Path, tmp_path: Path, summary: Summary) -> None:
    env = {"ATTNSERVE_NUM_THREADS": "1", "ATTNSERVE_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S)}
    with running_server(repo, tmp_path, env) as server:

        async def scenario() -> tuple[list, int, float, Reply]:
            pool, log, stop = Pool(server.url), [], asyncio.Event()

            async def user() -> None:
                while not stop.is_set():
                    log.append((await pool.send(predict("slow")), time.monotonic()))

            users = [asyncio.create_task(user()) for _ in range(USERS)]
            await asyncio.sleep(1.0)
            stop.set()  # no new requests from the users
            # A request sent just before is not admitted until the server has read it: one
            # that arrives after the signal is rightly refused. Give it that moment; the
            # queue behind the slow model (12 users, batches of 4) still holds 3 batches.
            await asyncio.sleep(ADMIT_GRACE_S)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            probe = Pool(server.url)
            ready = await probe.send(build_request("GET", "/readyz"))
            late = await probe.send(predict("slow"))
            await asyncio.gather(*users)
            await asyncio.gather(pool.close(), probe.close())
            return log, ready.status, signalled, late

        log, ready_status, signalled, late = asyncio.run(scenario())
        exit_code = server.process.wait(timeout=DRAIN_TIMEOUT_S + 10)
    drained = [reply for reply, answered in log if answered > signalled]
    assert ready_status == 503
    assert late.status == 503 and late.headers.get("retry-after"), late
    assert all(reply.failure is None for reply, _ in log), [r for r, _ in log if r.failure]
    assert {reply.status for reply, _ in log} <= {200, 503}
    assert drained and all(reply.status == 200 for reply in drained), drained[:3]
    assert exit_code == 0
    summary.add("faults", "SIGTERM under load", f"{len(drained)} in flight answered 200, "
                f"readiness 503 at once, exit {exit_code}")  # fmt: skip


def test_request_spanning_a_reload_is_served(server: Server, repo: Path) -> None:
    """Deterministic form of the race: the headers arrive before the reload, the body after."""
    body = DARK
    head = (
        f"POST /predict?model=flip HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head + body[:10])
        time.sleep(0.3)  # the handler has looked the model up and waits for the body
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=120) as client:
            assert client.post("/models/flip/reload").status_code == 200
        sock.sendall(body[10:])
        answer = read_json_answer(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
