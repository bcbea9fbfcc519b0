"""The memory limit is read from fake cgroup trees of each kind, as the CPU quota is: v2 and
v1, in a container's own namespace and seen from the host, where a parent holds the limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.memory_limit import cgroup_memory_limit
from tests.service.test_cpu_quota import V1_CONTAINER, V2_CONTAINER, V2_HOST, tree

GIB = 1 << 30
V1_HOST = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n"


@pytest.mark.parametrize(
    ("files", "proc", "limit"),
    [
        ({"memory.max": str(GIB)}, V2_CONTAINER, GIB),  # docker run --memory 1g
        ({"memory.max": "max"}, V2_CONTAINER, None),
        ({}, V2_CONTAINER, None),  # no memory controller delegated
        (
            {"kubepods/pod1/memory.max": str(2 * GIB), "kubepods/pod1/ctr/memory.max": "max"},
            V2_HOST,
            2 * GIB,
        ),
        ({"memory/memory.limit_in_bytes": str(GIB)}, V1_CONTAINER, GIB),
        ({"memory/memory.limit_in_bytes": "9223372036854771712"}, V1_CONTAINER, None),
        (
            {
                "memory/docker/memory.limit_in_bytes": str(3 * GIB),
                "memory/docker/abc/memory.limit_in_bytes": str(GIB),
            },
            V1_HOST,
            GIB,
        ),
    ],
)
def test_cgroup_memory_limit(
    tmp_path: Path, files: dict[str, str], proc: str, limit: int | None
) -> None:
    assert cgroup_memory_limit(tmp_path, tree(tmp_path, files, proc)) == limit


def test_no_cgroup_file_means_no_limit(tmp_path: Path) -> None:
    assert cgroup_memory_limit(tmp_path, tmp_path / "absent") is None
