"""What the numbers were measured on, and CPU time of processes read straight from /proc.

psutil is deliberately not a dependency: ``/proc/<pid>/stat`` fields 14 and 15 (utime, stime,
in clock ticks) cover every thread of a process, which is all a CPU share needs.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import torch

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> list[str]:
    """``/proc/<pid>/stat`` from field 3 (state) on: index ``i`` is field ``i + 3`` of stat(5)."""
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int | str | None = None) -> float:
    """User + system CPU seconds of a process (default: this one), all threads included, or of
    one thread (``"<pid>/task/<tid>"``)."""
    fields = _stat_fields(pid if pid is not None else "self")
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / CLOCK_TICKS


def group_pids(pgid: int) -> list[int]:
    """The processes of process group ``pgid``: a server and the workers it started."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                if int(_stat_fields(entry.name)[2]) == pgid:  # field 5, pgrp
                    pids.append(int(entry.name))
    return sorted(pids)


def total_cpu_seconds(pids: Iterable[int]) -> float:
    """Summed CPU seconds of ``pids``; a process that has gone counts as 0."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += cpu_seconds(pid)
    return total


def thread_cpu_seconds(pids: Iterable[int]) -> dict[str, float]:
    """CPU seconds of every thread of ``pids``, summed per thread name (``comm``): the service
    names its threads by role (service/thread_names.py); the rest are ``python`` and alike."""
    totals: dict[str, float] = {}
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for task in os.scandir(f"/proc/{pid}/task"):
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    with open(f"{task.path}/comm") as comm:
                        name = comm.read().strip()
                    used = cpu_seconds(f"{pid}/task/{task.name}")
                    totals[name] = totals.get(name, 0.0) + used
    return totals


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass(frozen=True)
class Machine:
    hostname: str
    nproc: int
    cpu: str
    python: str
    torch: str
    torch_threads: int
    interop_threads: int

    @classmethod
    def describe(cls) -> Machine:
        return cls(
            hostname=socket.gethostname(),
            nproc=os.cpu_count() or 1,
            cpu=cpu_model(),
            python=platform.python_version(),
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            interop_threads=torch.get_num_interop_threads(),
        )

    def slug(self) -> str:
        """A file-name-safe machine name: ``<nproc>cpu-<hostname>``."""
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.hostname)
        return f"{self.nproc}cpu-{safe[:40]}"

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("host", self.hostname),
            ("CPUs (nproc)", str(self.nproc)),
            ("CPU model", self.cpu),
            ("Python", self.python),
            ("torch", self.torch),
            ("torch threads (intra / inter-op)", f"{self.torch_threads} / {self.interop_threads}"),
        ]
