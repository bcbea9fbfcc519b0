"""The torch thread count follows the CPU quota inside a container (issue 12): the image run with
``docker run --cpus 1`` and with ``--cpuset-cpus 0`` serves with one intra-op thread, without
a limit with one per host CPU, and at concurrency 1 it answers at its usual speed.

The broken copy is torch's own default, which the service used before: inside the same
``--cpus 1`` container ``torch.get_num_threads()`` still counts the host's cores. The test
shows that default differs from the quota on this machine (else the check could not fail) and
measures its c=1 latency beside the service's. Traffic goes only to 127.0.0.1 and the test's
own containers, which are removed by name at the end."""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.docker.live import IMAGE, built_image, container, predict, predict_images
from tests.docker.stack import Stack

pytestmark = pytest.mark.slow

REQUESTS = 40
#: a demo classification takes a few milliseconds; throttled OpenMP barriers take hundreds
PATHOLOGICAL_S = 0.25
THREADS = re.compile(r"^attnserve_torch_threads (\S+)$", re.MULTILINE)


@dataclass
class Served:
    threads: int
    p50_s: float


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with built_image(tmp_path_factory.mktemp("cpu-quota")) as stack:
        yield stack


def serve(stack: Stack, name: str, *limits: str, env: dict[str, str] | None = None) -> Served:
    """The thread count the container reports and its c=1 median over ``REQUESTS`` (bounded)."""
    images = predict_images(REQUESTS, seed=7)
    with container(stack, name, *limits, env=env) as url:
        (threads,) = THREADS.findall(httpx.get(f"{url}/metrics", timeout=10).text)
        predict(url, images[0][0])  # the first request pays for lazy initialisation
        latencies = []
        for image, label in images:
            started = time.perf_counter()
            response = predict(url, image, top_k="1")
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            assert response.json()["results"][0]["predictions"][0]["label"] == label
    return Served(int(float(threads)), statistics.median(latencies))


def torch_default(stack: Stack, *limits: str) -> int:
    """What ``torch.get_num_threads()`` says inside the image under ``limits``."""
    command = ["python", "-c", "import torch; print(torch.get_num_threads())"]
    result = stack.docker("run", "--rm", "--entrypoint=", *limits, IMAGE, *command)
    return int(result.stdout.strip())


def test_threads_follow_the_cpu_quota(image: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    host = len(os.sched_getaffinity(0))
    if host < 2:
        pytest.skip("a one-CPU machine cannot tell a quota of 1 from no quota")
    assert torch_default(image, "--cpus=1") == host, "the broken copy would pass this test"
    quota = serve(image, "attnserve-quota-test-cpus", "--cpus=1")
    cpuset = serve(image, "attnserve-quota-test-cpuset", "--cpuset-cpus=0")
    unlimited = serve(image, "attnserve-quota-test-unlimited")
    # the broken copy: torch's default thread count under the same quota, for comparison
    default = serve(
        image, "attnserve-quota-test-default", "--cpus=1", env={"ATTNSERVE_NUM_THREADS": str(host)}
    )
    with capsys.disabled():
        for name, served in [
            ("--cpus 1", quota),
            ("--cpuset-cpus 0", cpuset),
            ("no limit", unlimited),
            ("--cpus 1, torch's default", default),
        ]:
            print(f"\ncpu quota: {name}: {served.threads} threads, "
                  f"c=1 p50 {served.p50_s * 1000:.1f} ms", end="")  # fmt: skip
    assert (quota.threads, cpuset.threads, unlimited.threads) == (1, 1, host)
    assert quota.p50_s < PATHOLOGICAL_S and cpuset.p50_s < PATHOLOGICAL_S, (quota, cpuset)
