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


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (default: this one), all threads included."""
    path = f"/proc/{pid if pid is not None else 'self'}/stat"
    with open(path) as stat:
        text = stat.read()
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / CLOCK_TICKS


def total_cpu_seconds(pids: Iterable[int]) -> float:
    """Summed CPU seconds of ``pids``; a process that has gone counts as 0."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += cpu_seconds(pid)
    return total


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
