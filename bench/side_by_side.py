"""Parts 2 and 3: the servers under load side by side, so that their ratios are fair.

Run one after another, the servers met different neighbours: on this shared machine one
server's c=32 throughput moved from 164 to 195 req/s within minutes (2026-12-02), more than the
15 % the goals compare. So every server starts once and stays up, their runs alternate cell by
cell and round by round, and a neighbour's burst lands on all of them alike.

A server that is not being measured is stopped (SIGSTOP to its process group) and continued
for its own runs, each of which begins with its warm-up. That keeps an idle server's pollers off
the cores of the one measured: idle, LitServe 0.2.19 used 0.13 of a core here, mosec,
TorchServe, attnserve and the baseline 0.001-0.003.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from bench.scenarios import Cell, Load, Scenario, plan_cells, run_into
from bench.servers import ServerProcess

Plan = list[tuple[Scenario, Load, int]]


def signal_group(server: ServerProcess, signum: int) -> None:
    """``signum`` to the server and every process it started (they share its group)."""
    with contextlib.suppress(ProcessLookupError):  # it has exited: its own runs will say so
        os.killpg(server.pid, signum)


@contextmanager
def continued(server: ServerProcess) -> Iterator[ServerProcess]:
    """The server running for the block, stopped again after it."""
    signal_group(server, signal.SIGCONT)
    try:
        yield server
    finally:
        signal_group(server, signal.SIGSTOP)


@contextmanager
def lineup(stack: ExitStack) -> Iterator[Callable[[ServerProcess], ServerProcess]]:
    """``admit(server)`` stops a server that has started (its context entered on ``stack``)
    until its runs; when the block ends, every admitted server is continued, so that
    ``stack`` can stop it (a stopped process would not act on SIGTERM)."""
    admitted: list[ServerProcess] = []

    def admit(server: ServerProcess) -> ServerProcess:
        signal_group(server, signal.SIGSTOP)
        admitted.append(server)
        return server

    try:
        yield admit
    finally:
        for server in admitted:
            signal_group(server, signal.SIGCONT)


@dataclass(frozen=True)
class Entry:
    server: ServerProcess
    plan: Plan
    scrape: bool  # read the server's /metrics too (attnserve's stage breakdown)


def run_side_by_side(
    entries: list[Entry],
    duration_s: float,
    warmup_s: float,
    max_requests: int,
    log: Callable[[str], None],
    after_round: Callable[[], None] | None = None,
) -> list[list[Cell]]:
    """Each entry's plan, (scenario, load, repeats) as for ``run_cells``, with the servers
    taking turns: in every round, each load (in the order the plans name them) runs on every
    server that has it before the next load starts. ``after_round`` runs at the end of each
    round, while every server is stopped (the in-process references' turn). The cells come
    back per entry, in plan order."""
    cells = [plan_cells(entry.server, entry.plan) for entry in entries]
    rounds = max((repeats for entry in entries for _, _, repeats in entry.plan), default=0)
    labels = dict.fromkeys(load.label for entry in entries for _, load, _ in entry.plan)
    limits = duration_s, warmup_s, max_requests
    for round_index in range(rounds):
        for label in labels:
            for entry, entry_cells in zip(entries, cells, strict=True):
                for cell, (_, load, repeats) in zip(entry_cells, entry.plan, strict=True):
                    if load.label != label or round_index >= repeats:
                        continue
                    with continued(entry.server) as server:
                        run_into(cell, server, load, *limits, entry.scrape, log)
        if after_round is not None:
            after_round()
    return cells
