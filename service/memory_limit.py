"""How much memory this process may use: the tightest cgroup memory limit on its path (v2
``memory.max``, v1 ``memory.limit_in_bytes``), read like the CPU quota in
:mod:`service.cpu_quota`, whose path helpers it shares.

Why it matters: past that limit the kernel's OOM killer ends the whole container, every
request in flight with it. The memory budget (:mod:`service.engine.memory`) is derived from
this figure, so the service refuses work it cannot afford instead of being killed for it.
"""

from __future__ import annotations

from pathlib import Path

from service.cpu_quota import CGROUP_ROOT, PROC_CGROUP, ancestors, cgroup_paths, read

#: v1 reports "no limit" as a huge page-rounded number (2**63 - 4096 on x86-64)
V1_UNLIMITED = 1 << 60


def v2_limit(folder: Path) -> int | None:
    """Bytes allowed by ``memory.max`` (``"max"``: unlimited)."""
    text = read(folder / "memory.max")
    return None if text is None or text == "max" else int(text)


def v1_limit(folder: Path) -> int | None:
    """Bytes allowed by ``memory.limit_in_bytes`` (at least :data:`V1_UNLIMITED`: unlimited)."""
    text = read(folder / "memory.limit_in_bytes")
    return None if text is None or int(text) >= V1_UNLIMITED else int(text)


def cgroup_memory_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """The tightest memory limit on the process's cgroup path, in bytes; None when unlimited."""
    text = read(proc_cgroup)
    if text is None:
        return None
    unified, memory = cgroup_paths(text, "memory")
    limits: list[int] = []
    if unified is not None:
        limits += filter(None, map(v2_limit, ancestors(root, unified)))
    if memory is not None:
        limits += filter(None, map(v1_limit, ancestors(root / "memory", memory)))
    return min(limits, default=None)
