"""Chaos under load (issue 13): the model store changed under a flood of /predict and v2
requests from a few concurrent clients (reload, a reload of a corrupt version, unload) and
SIGTERM in the middle of a reload. Each case loses nothing: every request gets an answer among
the statuses the README documents for it, none is a 500, and the server logs no traceback."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bench.client import Pool, Reply, build_request
from models.repository.config import read_config
from models.repository.layout import config_path, model_file
from models.repository.versions import record_version
from tests.reliability.conftest import API_KEY, Summary
from tests.reliability.load import RequestFactory, Timed, manage, traffic_during
from tests.service.fake_models import FLIP_LABEL, SIZE, add_flip_version, faults_repository
from tests.service.images import solid
from tests.service.server import Server, running_server

AUTH = {"Authorization": f"Bearer {API_KEY}"}
USERS = 6
#: Shorter than one batch of the slow model, so that an unload runs out of it with requests
#: still queued (6 users need 2 batches of 4). Reloads of flip drain well within it.
DRAIN_TIMEOUT_S = 0.2
#: One batch of the slow model takes about 0.5 s on one thread: queues build up behind it.
SLOW_ROUNDS = 25
DARK = solid((20, 30, 40))
PIXELS = [0.0] * (3 * SIZE * SIZE)
V2_INPUT = json.dumps(
    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, SIZE, SIZE], "data": PIXELS}]}
).encode()


def mixed(model: str) -> RequestFactory:
    """Request ``number``: every fourth a v2 infer, the others /predict with a PNG."""

    def make(number: int) -> bytes:
        if number % 4 == 0:
            return build_request("POST", f"/v2/models/{model}/infer", V2_INPUT,
                                 {"Content-Type": "application/json"})  # fmt: skip
        return build_request("POST", f"/predict?model={model}", DARK, {"Content-Type": "image/png"})

    return make


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return faults_repository(tmp_path_factory.mktemp("chaos") / "repo", slow_rounds=SLOW_ROUNDS)


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[Server]:
    env = {"ATTNSERVE_API_KEY": API_KEY, "ATTNSERVE_NUM_THREADS": "1",
           "ATTNSERVE_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S)}  # fmt: skip
    with running_server(repo, repo.parent, env) as server:
        yield server


def flood_around(
    server: Server, model: str, path: str, delay_s: float = 0.5
) -> tuple[list[Timed], httpx.Response]:
    """A flood of ``model`` from ``USERS`` clients around one management call ``path``."""

    async def scenario() -> tuple[list[Timed], httpx.Response]:
        pool = Pool(server.url)
        action = asyncio.create_task(manage(server.url, path, AUTH, delay_s))
        try:
            log = await traffic_during(pool, mixed(model), USERS, action)
        finally:
            await pool.close()
        return log, action.result()

    return asyncio.run(scenario())


def version_of(reply: Reply) -> int:
    body = json.loads(reply.body)
    return int(body.get("version", body.get("model_version", 0)))


def check_answered(server: Server, log: list[Timed], allowed: set[int]) -> None:
    """Nothing lost: every request has an answer, of an allowed status; no traceback logged."""
    failures = [reply.failure for _, _, reply in log if reply.failure is not None]
    assert not failures, failures[:5]
    wrong = [(r.status, r.body[:200]) for _, _, r in log if r.status not in allowed]
    assert not wrong, wrong[:5]
    assert "Traceback" not in server.log(), server.log()[-3000:]


def check_flip_labels(log: list[Timed]) -> set[int]:
    """Every /predict 200 carries the answer of the version it names; the versions seen."""
    for _, _, reply in log:
        body = json.loads(reply.body)
        if reply.status == 200 and "results" in body:
            label = body["results"][0]["predictions"][0]["label"]
            assert label == FLIP_LABEL[body["version"]], body
    return {version_of(reply) for _, _, reply in log if reply.status == 200}


def test_reload_during_a_flood_fails_nothing(server: Server, repo: Path, summary: Summary) -> None:
    add_flip_version(repo, 2)
    log, answer = flood_around(server, "flip", "/models/flip/reload")
    assert answer.status_code == 200, answer.text
    check_answered(server, log, {200})
    assert check_flip_labels(log) == {1, 2}
    assert {version_of(r) for sent, _, r in log if sent > 0} == {2}
    summary.report("chaos: reload during a flood", [("requests (all 200)", len(log))])


def model_status(server: Server, name: str) -> tuple[dict, httpx.Response]:
    """``name``'s entry in /models, and /readyz."""
    with server.client() as client:
        models = {m["name"]: m for m in client.get("/models").json()["models"]}
        return models[name], client.get("/readyz")


def corrupt_version(repo: Path, version: int, *, matching_sha: bool) -> None:
    """A new version of "flip" whose file is garbage: recorded with its own sha256 (loading
    itself fails) or with a healthy file's (the checksum check fails)."""
    path = add_flip_version(repo, version)
    path.write_bytes(b"garbage, not a TorchScript archive " * 100)
    if matching_sha:
        record_version(repo, read_config(config_path(repo, "flip")), version, architecture="x")


CORRUPTIONS = [(3, True, "RuntimeError"), (4, False, "does not match config.json")]


@pytest.mark.parametrize(("version", "matching_sha", "error"), CORRUPTIONS)
def test_a_corrupt_reload_keeps_the_old_version_serving(
    server: Server, repo: Path, summary: Summary, version: int, matching_sha: bool, error: str
) -> None:
    corrupt_version(repo, version, matching_sha=matching_sha)
    log, answer = flood_around(server, "flip", "/models/flip/reload")
    assert answer.status_code == 200, answer.text  # the reload ran; its outcome is the status
    check_answered(server, log, {200})
    assert check_flip_labels(log) == {2}
    flip, ready = model_status(server, "flip")
    with server.client() as client:
        after = client.post("/predict", params={"model": "flip"}, content=DARK,
                            headers={"Content-Type": "image/png"})  # fmt: skip
    states = {v["version"]: (v["state"], v["error"]) for v in flip["versions"]}
    assert flip["ready"] and states[2] == ("ready", None)
    assert states[version][0] == "failed" and error in states[version][1], states
    # documented: a model that still serves a version is ready; only its broken version fails
    assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
    assert after.status_code == 200 and after.json()["version"] == 2, after.text
    summary.report(
        f"chaos: reload of a corrupt version {version}",
        [("requests (all 200, from v2)", len(log)), ("/models says", states[version][1][:60])],
    )


def flip_config(repo: Path) -> Path:
    return config_path(repo, "flip")


def served_file(repo: Path) -> Path:
    """The file of the version being served (2)."""
    return model_file(repo, "flip", 2, read_config(flip_config(repo)).versions[2].file)


@pytest.mark.parametrize("target", [flip_config, served_file])
def test_a_reload_that_breaks_what_serves_keeps_its_previous_load(
    server: Server, repo: Path, summary: Summary, target: Callable[[Path], Path]
) -> None:
    """Documented: the previous load of what the reload broke still serves (version 2, not the
    older version 1), /models and /readyz's errors say why, and /readyz stays 200."""
    path = target(repo)
    healthy = path.read_bytes()
    path.write_bytes(b"{garbage: neither JSON nor TorchScript")
    try:
        log, answer = flood_around(server, "flip", "/models/flip/reload")
    finally:
        path.write_bytes(healthy)  # the next tests' servers load a healthy repository
    assert answer.status_code == 200, answer.text
    check_answered(server, log, {200})
    assert check_flip_labels(log) == {2}
    flip, ready = model_status(server, "flip")
    assert flip["ready"] and flip["error"].startswith("reload failed ("), flip
    assert flip["error"].endswith("2 still serves"), flip["error"]
    assert ready.status_code == 200 and ready.json()["errors"]["flip"] == flip["error"]
    summary.report(
        f"chaos: reload with a broken {target.__name__}",
        [("requests (all 200, from v2)", len(log)), ("/models says", flip["error"][:60])],
    )


def test_unload_during_a_flood(server: Server, summary: Summary) -> None:
    log, answer = flood_around(server, "slow", "/models/slow/unload", delay_s=1.5)
    assert answer.status_code == 200, answer.text
    check_answered(server, log, {200, 503, 404})
    began = -answer.elapsed.total_seconds()  # the unload call, relative to its end
    queued = [r.status for sent, answered, r in log if sent < began and answered >= began]
    later = [r.status for sent, _, r in log if sent > 0]
    assert queued and set(queued) <= {200, 503}, queued
    assert 503 in queued, "the drain budget should have run out with requests queued"
    assert later and set(later) == {404}, later
    summary.report("chaos: unload during a flood", [
        ("queued at the unload", f"{queued.count(200)} x 200, {queued.count(503)} x 503"),
        ("sent after it", f"{len(later)} x 404"),
    ])  # fmt: skip


def test_sigterm_during_a_reload(repo: Path, tmp_path: Path, summary: Summary) -> None:
    drain_s = 4.0
    env = {"ATTNSERVE_API_KEY": API_KEY, "ATTNSERVE_NUM_THREADS": "1",
           "ATTNSERVE_DRAIN_TIMEOUT_S": str(drain_s)}  # fmt: skip
    with running_server(repo, tmp_path, env) as server:

        async def scenario() -> tuple[list[Reply], Reply, float]:
            pool, replies, stop = Pool(server.url), [], asyncio.Event()
            make = mixed("flip")

            async def user() -> None:
                for number in range(2_000):
                    if stop.is_set():
                        return
                    replies.append(await pool.send(make(number)))

            users = [asyncio.create_task(user()) for _ in range(USERS)]
            reload = asyncio.create_task(manage(server.url, "/models/slow/reload", AUTH, 1.0))
            await asyncio.sleep(1.5)  # the reload is warming up the slow model's new load
            stop.set()  # the users send nothing more: all they have out was admitted
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await asyncio.gather(*users)
            await pool.close()
            reload_answer = await reload
            return replies, reload_answer, signalled

        replies, reload_answer, signalled = asyncio.run(scenario())
        exit_code = server.process.wait(timeout=drain_s + 30)
        exited_s = time.monotonic() - signalled
    assert all(r.failure is None for r in replies), [r.failure for r in replies if r.failure]
    assert {r.status for r in replies} <= {200, 503}
    assert reload_answer.status_code in (200, 503), reload_answer.text
    assert exit_code == 0
    assert exited_s < drain_s + 1, f"exited {exited_s:.1f} s after SIGTERM"
    assert "Traceback" not in server.log(), server.log()[-3000:]
    summary.report("chaos: SIGTERM during a reload", [
        ("requests", f"{len(replies)} ({sum(r.status == 200 for r in replies)} x 200)"),
        ("reload answered", reload_answer.status_code),
        ("exit", f"{exit_code} after {exited_s:.1f} s (budget {drain_s:.0f} s)"),
    ])  # fmt: skip
