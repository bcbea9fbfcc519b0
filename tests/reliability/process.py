"""What a server process holds, read from /proc: resident memory, open files, threads."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Footprint:
    rss_mb: float
    fds: int
    threads: int


def footprint(pid: int) -> Footprint:
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value.split()
    return Footprint(
        rss_mb=int(fields["VmRSS"][0]) / 1024,
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(fields["Threads"][0]),
    )
