"""How many CPUs this process may really use: the smaller of its affinity mask and its cgroup's
CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``), never the host's
core count.

Why it matters: torch's default intra-op thread count is the number of cores it sees, which in
a container is the host's. A pod limited to 2 CPUs on a 64-core node would run 64 OpenMP
threads, burn its quota in the first few milliseconds of every 100 ms period and sit throttled
for the rest: every parallel region then waits at its barrier for a thread the kernel has
parked. One thread per CPU of quota keeps a forward pass inside its budget.

A fractional quota rounds down (``--cpus 1.5`` -> 1 thread): a second thread that can only run
half the time would stall every barrier it takes part in. Nested cgroups (a pod's limit on a
parent of the container's cgroup) count too: the tightest quota on the path to the root wins.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def cgroup_paths(proc_cgroup: str, controller: str = "cpu") -> tuple[str | None, str | None]:
    """The process's cgroup path under v2 (``0::/path``) and under v1's ``controller``, from
    the text of ``/proc/self/cgroup``."""
    unified = v1 = None
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            unified = path
        elif controller in controllers.split(","):
            v1 = path
    return unified, v1


def ancestors(root: Path, path: str) -> list[Path]:
    """``root/path`` and each of its parents up to ``root``. Inside a container's cgroup
    namespace the path is ``/`` and only the root exists; a host's path that is not mounted
    here (v1 without a namespace) is skipped."""
    folders = [root]
    for part in filter(None, path.strip("/").split("/")):
        folders.append(folders[-1] / part)
    return [folder for folder in reversed(folders) if folder.is_dir()]


def read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def v2_quota(folder: Path) -> float | None:
    """CPUs allowed by ``cpu.max`` (``"max 100000"``: unlimited, ``"150000 100000"``: 1.5)."""
    text = read(folder / "cpu.max")
    if text is None:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max" or not period:
        return None
    return int(quota) / int(period)


def v1_quota(folder: Path) -> float | None:
    """CPUs allowed by ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1: unlimited)."""
    quota, period = read(folder / "cpu.cfs_quota_us"), read(folder / "cpu.cfs_period_us")
    if quota is None or period is None or int(quota) <= 0:
        return None
    return int(quota) / int(period)


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The tightest CPU quota on the process's cgroup path, in CPUs; None when unlimited."""
    text = read(proc_cgroup)
    if text is None:
        return None
    unified, cpu = cgroup_paths(text)
    quotas: list[float] = []
    if unified is not None:
        quotas += filter(None, map(v2_quota, ancestors(root, unified)))
    if cpu is not None:
        for mount in (root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"):
            quotas += filter(None, map(v1_quota, ancestors(mount, cpu)))
    return min(quotas, default=None)


def affinity_cpus() -> int:
    """CPUs in the process's affinity mask (``taskset``, ``docker --cpuset-cpus``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def usable_cpus(quota: float | None, affinity: int) -> int:
    """Whole CPUs the process may keep busy: the affinity mask, capped by the quota rounded
    down, and at least one."""
    if quota is None:
        return max(1, affinity)
    return max(1, min(affinity, math.floor(quota)))


def default_threads() -> int:
    """torch's intra-op thread count when ``ATTNSERVE_NUM_THREADS`` is unset (0)."""
    return usable_cpus(cgroup_quota(), affinity_cpus())
