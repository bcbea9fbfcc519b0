"""The CPU quota is read from fake cgroup trees of each kind: v2 and v1, in a container's own
namespace (path ``/``) and seen from the host (a nested path whose parent holds the limit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cpu_quota import cgroup_paths, cgroup_quota, usable_cpus

V2_CONTAINER = "0::/\n"
V2_HOST = "0::/kubepods/pod1/ctr\n"
V1_CONTAINER = "12:memory:/\n4:cpu,cpuacct:/\n1:name=systemd:/\n"
V1_HOST = "4:cpu,cpuacct:/docker/abc\n"


def v1(folder: str, quota_us: str) -> dict[str, str]:
    return {f"{folder}/cpu.cfs_quota_us": quota_us, f"{folder}/cpu.cfs_period_us": "100000"}


def tree(root: Path, files: dict[str, str], proc: str) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    (root / "proc-cgroup").write_text(proc)
    return root / "proc-cgroup"


def test_cgroup_paths_of_both_versions() -> None:
    assert cgroup_paths(V2_HOST) == ("/kubepods/pod1/ctr", None)
    assert cgroup_paths(V1_HOST) == (None, "/docker/abc")
    assert cgroup_paths(V1_CONTAINER + V2_CONTAINER) == ("/", "/")


@pytest.mark.parametrize(
    ("files", "proc", "quota"),
    [
        ({"cpu.max": "100000 100000"}, V2_CONTAINER, 1.0),  # docker run --cpus 1
        ({"cpu.max": "150000 100000"}, V2_CONTAINER, 1.5),
        ({"cpu.max": "max 100000"}, V2_CONTAINER, None),
        ({}, V2_CONTAINER, None),  # no cpu controller delegated
        # a pod's limit sits on a parent of the container's cgroup; the tightest one wins
        (
            {"kubepods/pod1/cpu.max": "200000 100000", "kubepods/pod1/ctr/cpu.max": "max 100000"},
            V2_HOST,
            2.0,
        ),
        (
            {"kubepods/pod1/cpu.max": "400000 100000", "kubepods/pod1/ctr/cpu.max": "50000 100000"},
            V2_HOST,
            0.5,
        ),
        (v1("cpu,cpuacct", "200000"), V1_CONTAINER, 2.0),
        (v1("cpu,cpuacct", "-1"), V1_CONTAINER, None),
        (v1("cpu/docker/abc", "300000"), V1_HOST, 3.0),
    ],
)
def test_cgroup_quota(
    tmp_path: Path, files: dict[str, str], proc: str, quota: float | None
) -> None:
    proc_cgroup = tree(tmp_path, files, proc)
    assert cgroup_quota(tmp_path, proc_cgroup) == quota


def test_no_cgroup_filesystem_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_quota(tmp_path, tmp_path / "absent") is None


@pytest.mark.parametrize(
    ("quota", "affinity", "threads"),
    [(None, 2, 2), (1.0, 2, 1), (1.5, 2, 1), (0.5, 2, 1), (4.0, 2, 2), (2.0, 64, 2), (None, 1, 1)],
)
def test_usable_cpus_is_the_affinity_capped_by_the_quota_rounded_down(
    quota: float | None, affinity: int, threads: int
) -> None:
    assert usable_cpus(quota, affinity) == threads
