"""The live stack of test_compose_live.py: built, started and observed once per module.

What a user does (README "Run with Docker"): build the local bases, ``docker compose build``,
``docker compose up -d --build``, wait for the healthcheck. Along the way it measures the build,
the time from ``up`` to the first correct prediction and the image size, and probes the
healthchecks while the models are still loading."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from models.demo.shapes import SHAPE_CLASSES, generate_batch
from tests.docker import tools
from tests.docker.broken import broken_copy
from tests.docker.engine import require_engine
from tests.docker.stack import BUILD_TIMEOUT_S, Stack, local_bases, torch_wheels, wheel_server
from tests.service.images import encode

CLASSIFIER, SEGMENTER = "shapes-classifier", "shapes-segmenter"
IMAGE = "attnserve:latest"
#: the image's build reuses its torch layer only when the find-links URL stays the same
WHEEL_PORT = 18765
UP_TIMEOUT_S = 600
HEALTHY_TIMEOUT_S = 240
FIRST_PREDICTION_TIMEOUT_S = 240
POLL_S = 0.5
READYZ, LIVENESS = "/readyz', timeout=2)", "/healthz', timeout=2)"


@dataclass
class Live:
    """The running stack and what was measured bringing it up."""

    stack: Stack
    timings: dict[str, float] = field(default_factory=dict)
    #: healthcheck name -> exit status, probed while /readyz answered 503 and once healthy
    while_loading: dict[str, int] = field(default_factory=dict)
    once_ready: dict[str, int] = field(default_factory=dict)

    def url(self, service: str = "attnserve", index: int = 1) -> str:
        return self.stack.url(service, index)


def quick_alert_rules(work: Path) -> Path:
    """The shipped rules with every alert's ``for:`` set to 0 s, so that a forced condition
    fires within one evaluation; the expressions and thresholds stay as shipped."""
    folder = work / "rules"
    shutil.copytree(tools.RULES_DIR, folder)
    alerts = folder / "alerts.yml"
    alerts.write_text(re.sub(r"for: \d+[smh]", "for: 0s", alerts.read_text()))
    return folder


def predict_images(count: int, seed: int = 123) -> list[tuple[bytes, str]]:
    """Freshly drawn demo images as PNG, each with its true class name."""
    images, labels, _ = generate_batch(seed, count, size=64)
    return [
        (encode(image), SHAPE_CLASSES[label]) for image, label in zip(images, labels, strict=True)
    ]


def predict(url: str, image: bytes, **params: str) -> httpx.Response:
    return httpx.post(
        f"{url}/predict",
        params={"model": CLASSIFIER, **params},
        content=image,
        headers={"content-type": "image/png"},
        timeout=30.0,
    )


def healthchecks(live: Live, broken_compose: Path) -> dict[str, list[str]]:
    """The commands Docker runs: compose.yaml's, the image's HEALTHCHECK, and a broken copy's
    (compose.yaml probing /healthz, the liveness path)."""
    image = live.stack.docker(
        "image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}", IMAGE
    )
    broken = Stack(env=live.stack.env, project=live.stack.project, files=[broken_compose])
    return {
        "compose": live.stack.config()["services"]["attnserve"]["healthcheck"]["test"][1:],
        "image": json.loads(image.stdout)[1:],
        "broken-copy": broken.config()["services"]["attnserve"]["healthcheck"]["test"][1:],
    }


def readyz(url: str) -> int | None:
    try:
        return httpx.get(f"{url}/readyz", timeout=2.0).status_code
    except httpx.TransportError:
        return None


def probe(live: Live, container: str, commands: dict[str, list[str]]) -> dict[str, int]:
    return {name: live.stack.exec_status(container, command) for name, command in commands.items()}


def observe_loading(live: Live, commands: dict[str, list[str]]) -> None:
    """Runs every healthcheck inside the container while its models load: from the moment the
    server answers until /readyz turns 200 (bounded). A sample counts only when /readyz said
    503 both before and after it."""
    (container,) = live.stack.containers("attnserve")
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    while time.monotonic() < deadline:
        before = readyz(live.url())
        if before == 200:
            return
        if before == 503:
            sample = probe(live, container, commands)
            if readyz(live.url()) == 503:
                live.while_loading = sample
                return
        time.sleep(0.1)


def first_prediction(live: Live, started: float) -> float:
    """Seconds from ``started`` until a /predict answered 200, asked for once /readyz says ready (as
    a client that honours readiness would; polling /predict itself would count 503s while the
    models load, which the 5xx panels and alerts would then show)."""
    image, _ = predict_images(1)[0]
    while readyz(live.url()) != 200:
        assert time.monotonic() - started < FIRST_PREDICTION_TIMEOUT_S, "never ready"
        time.sleep(POLL_S)
    response = predict(live.url(), image, top_k="1")
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["predictions"], response.text
    return time.monotonic() - started


def substitutions(work: Path, stack: ExitStack, env: dict[str, str]) -> dict[str, str]:
    """The documented substitutions: local bases, the host's torch wheel on loopback, every
    port on 127.0.0.1 (ephemeral), the test's alert rules, a 20 s locust run."""
    found = {
        **local_bases(env),
        "ATTNSERVE_BIND": "127.0.0.1",
        "ATTNSERVE_PORT": "",
        "ATTNSERVE_GRPC_HOST_PORT": "",
        "BALANCER_PORT": "",
        "BALANCER_GRPC_PORT": "",
        "PROMETHEUS_PORT": "",
        "PROMETHEUS_RULES": str(quick_alert_rules(work)),
        "LOCUST_RUN_TIME": "20s",
        "LOCUST_USERS": "8",
    }
    wheels = torch_wheels()
    if wheels is not None:
        find_links = stack.enter_context(wheel_server(wheels, WHEEL_PORT))
        found |= {
            "TORCH_INDEX_URL": "https://pypi.org/simple",
            "TORCH_FIND_LINKS": find_links,
            "ATTNSERVE_BUILD_NETWORK": "host",
        }
    return found


@contextmanager
def built_image(work: Path) -> Iterator[Stack]:
    """``attnserve:latest`` built as the live stack builds it, for tests that run the image on
    its own (``docker run``). The layers are shared with the stack's build, so whichever runs
    second takes seconds."""
    env = require_engine()
    with ExitStack() as resources:
        stack = Stack(env={**env, **substitutions(work, resources, env)})
        stack.compose("build", "attnserve", timeout=BUILD_TIMEOUT_S)
        yield stack


@contextmanager
def live_stack(work: Path) -> Iterator[Live]:
    """The stack up and healthy; always ``docker compose down -v`` afterwards."""
    env = require_engine()
    with ExitStack() as resources:
        live = Live(Stack(env={**env, **substitutions(work, resources, env)}))
        broken = broken_copy(tools.ROOT / "compose.yaml", work / "compose.yaml", READYZ, LIVENESS)
        try:
            started = time.monotonic()
            live.stack.compose("--profile", "loadtest", "build", timeout=BUILD_TIMEOUT_S)
            live.timings["build_s"] = time.monotonic() - started
            started = time.monotonic()
            live.stack.compose("up", "--detach", "--build", timeout=UP_TIMEOUT_S)
            commands = healthchecks(live, broken)
            observe_loading(live, commands)
            live.timings["first_prediction_s"] = first_prediction(live, started)
            (container,) = live.stack.wait_healthy("attnserve", 1, HEALTHY_TIMEOUT_S)
            live.timings["healthy_s"] = time.monotonic() - started
            live.once_ready = probe(live, container, commands)
            size = live.stack.docker("image", "inspect", "--format", "{{.Size}}", IMAGE)
            live.timings["image_mb"] = int(size.stdout) / 1e6
            yield live
        finally:
            live.stack.down()
