"""Part 6: robustness to foreign load. Another process keeps one core busy (a bounded
``python -c`` loop, started and stopped here), and the same figures are measured quiet and
busy: in-process (best-batch throughput, one image incl. decode) and the service (c=1 p50,
c=32 throughput). Issue 12's goal: the service degrades by no more than the in-process
figures do under the same load.

Why it matters: OpenMP threads that spin while they wait burn the cores a neighbour needs,
and a forward pass whose other thread is preempted waits at every barrier of its hundreds of
parallel regions; on a busy machine that turned a 15 ms request into 488 ms (issue 12).
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.goals import verdict
from bench.report import fmt, table
from bench.scenarios import Cell
from bench.servers import terminate

#: the loop ends by itself after this long, even if the benchmark dies
BUSY_MAX_S = 600


@contextmanager
def busy_core() -> Iterator[subprocess.Popen[bytes]]:
    """One core kept busy by another process, for the duration of the ``with``."""
    code = f"import time\nend = time.monotonic() + {BUSY_MAX_S}\nwhile time.monotonic() < end: pass"
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        yield process
    finally:
        terminate(process, timeout_s=5)


@dataclass(frozen=True)
class Figures:
    """One side (in-process or the service), quiet or busy."""

    throughput: float  # in-process: best-batch img/s; service: c=32 req/s
    p50_ms: float  # in-process: one image incl. decode; service: c=1 p50


def ratio(numerator: float, denominator: float) -> float:
    """nan where a run answered nothing (a tiny smoke run on a busy machine)."""
    return numerator / denominator if denominator and not math.isnan(denominator) else math.nan


def measured(quiet: Figures, busy: Figures) -> tuple[float, float]:
    """(throughput kept, latency grown): busy / quiet for each."""
    return ratio(busy.throughput, quiet.throughput), ratio(busy.p50_ms, quiet.p50_ms)


def service_figures(cells: list[Cell]) -> Figures:
    by_load = {cell.load: cell for cell in cells}
    return Figures(by_load["c=32"].throughput, by_load["c=1"].latency_ms(0.5))


def both(measure: Callable[[], Figures]) -> tuple[Figures, Figures]:
    """``measure`` quiet, then with one core busy."""
    quiet = measure()
    with busy_core():
        busy = measure()
    return quiet, busy


def foreign_table(in_process: tuple[Figures, Figures], service: tuple[Figures, Figures]) -> str:
    (kept_in, grown_in), (kept_sv, grown_sv) = measured(*in_process), measured(*service)
    rows = [
        ["in-process: best batch img/s | 1 image ms", fmt(in_process[0].throughput),
         fmt(in_process[1].throughput), fmt(in_process[0].p50_ms, 2),
         fmt(in_process[1].p50_ms, 2), fmt(kept_in, 2), fmt(grown_in, 2)],
        ["attnserve: c=32 req/s | c=1 p50 ms", fmt(service[0].throughput),
         fmt(service[1].throughput), fmt(service[0].p50_ms, 2), fmt(service[1].p50_ms, 2),
         fmt(kept_sv, 2), fmt(grown_sv, 2)],
    ]  # fmt: skip
    goals = [
        ["c=32 throughput kept under foreign load >= in-process's",
         f"{fmt(kept_sv, 2)} x vs {fmt(kept_in, 2)} x", verdict(kept_sv >= kept_in)],
        ["c=1 p50 growth under foreign load <= in-process's",
         f"{fmt(grown_sv, 2)} x vs {fmt(grown_in, 2)} x", verdict(grown_sv <= grown_in)],
    ]  # fmt: skip
    header = ["", "throughput quiet", "busy", "p50 quiet", "busy", "throughput kept", "p50 grown"]
    return "\n\n".join([table(header, rows), table(["goal (issue 12)", "measured", "met?"], goals)])
