"""The memory budget holds inside a memory-limited container (issue 13): the image run with
``docker run --memory 1g --memory-swap 1g`` derives its budget from the cgroup, takes a mixed
flood for 60 s (:mod:`tests.docker.flood`; the pixel cap raised to 100 Mpx, so that only
the budget refuses a 64 Mpx image) and is never OOM-killed; every answer is 200, 413,
503 or 504; the cgroup's own peak stays under the limit; afterwards a prediction is right.

The broken copy is the same flood with the budget off (``ATTNSERVE_MEMORY_BUDGET_MB=0``): it
gets the container OOM-killed (figures in the commit message). It is not a test here: when the kill
comes depends on which requests overlap. Traffic goes only to 127.0.0.1 and the test's own
container, removed by name at the end."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.docker.flood import MAX_IMAGE_PIXELS, flood
from tests.docker.live import built_image, container, predict, predict_images
from tests.docker.stack import Stack

pytestmark = pytest.mark.slow

NAME = "attnserve-memory-test"
LIMIT_MB = 1024
FLOOD_S = 60.0
MAX_REQUESTS = 5000
ANSWERS = {"200", "413", "503", "504"}
#: cgroup v1 and v2 names of the limit and of the peak the kernel records
LIMIT_FILES = ("memory/memory.limit_in_bytes", "memory.max")
PEAK_FILES = ("memory/memory.max_usage_in_bytes", "memory.peak")
BUDGET = re.compile(r"^attnserve_memory_budget_bytes (\S+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with built_image(tmp_path_factory.mktemp("memory")) as stack:
        yield stack


def cgroup_figure(stack: Stack, names: tuple[str, ...]) -> int:
    """The first of ``names`` (under /sys/fs/cgroup) the container has, in bytes."""
    for name in names:
        result = stack.docker("exec", NAME, "cat", f"/sys/fs/cgroup/{name}", check=False)
        if result.returncode == 0:
            return int(result.stdout)
    raise AssertionError(f"none of {names} in the container's cgroup")


def test_a_mixed_flood_in_1g_is_never_oom_killed(
    image: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    limits = (f"--memory={LIMIT_MB}m", f"--memory-swap={LIMIT_MB}m")
    env = {"ATTNSERVE_MAX_IMAGE_PIXELS": str(MAX_IMAGE_PIXELS)}
    with container(image, NAME, *limits, env=env) as url:
        assert cgroup_figure(image, LIMIT_FILES) == LIMIT_MB << 20
        (budget,) = BUDGET.findall(httpx.get(f"{url}/metrics", timeout=10).text)
        outcomes = flood(url, FLOOD_S, MAX_REQUESTS)
        counts = sum(outcomes.values(), Counter[str]())
        state = image.docker(
            "inspect", "--format", "{{.State.OOMKilled}} {{.RestartCount}} {{.State.Running}}", NAME
        ).stdout.split()
        peak = cgroup_figure(image, PEAK_FILES) if state[-1] == "true" else LIMIT_MB << 20
        good, label = predict_images(1, seed=11)[0]
        after = predict(url, good, top_k="1")
        with capsys.disabled():
            total, statuses = sum(counts.values()), dict(sorted(counts.items()))
            print(f"\nmemory: --memory {LIMIT_MB}m, budget {float(budget) / 2**20:.0f} MB, "
                  f"{total} requests in {FLOOD_S:.0f} s: {statuses}, "
                  f"cgroup peak {peak / 2**20:.0f} MB, OOMKilled/restarts/running {state}",
                  end="")  # fmt: skip
            for name, seen in outcomes.items():
                print(f"\n  {name}: {dict(sorted(seen.items()))}", end="")
    assert state == ["false", "0", "true"], state
    assert set(counts) <= ANSWERS, counts
    assert counts["200"] > 0 and counts["413"] > 0, counts
    assert peak < LIMIT_MB << 20
    assert float(budget) > 0
    assert after.status_code == 200, after.text
    assert after.json()["results"][0]["predictions"][0]["label"] == label
