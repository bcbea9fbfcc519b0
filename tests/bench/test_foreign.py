"""Part 6's pieces: the busy loop really occupies a core and is stopped with its ``with``, and
the goals compare the service's degradation with the in-process one."""

from __future__ import annotations

import time

from bench.foreign import Figures, busy_core, foreign_table
from bench.machine import cpu_seconds


def test_the_busy_loop_burns_a_core_and_stops_with_its_block() -> None:
    with busy_core() as process:
        deadline = time.monotonic() + 10  # bounded: a loaded machine gives it less than a core
        while cpu_seconds(process.pid) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cpu_seconds(process.pid) >= 0.5 and process.poll() is None  # still running
    assert process.poll() is not None


def test_the_goals_compare_degradation_with_in_process() -> None:
    in_process = Figures(100.0, 10.0), Figures(60.0, 20.0)  # kept 0.6, grown 2.0
    better = Figures(80.0, 12.0), Figures(60.0, 18.0)  # kept 0.75, grown 1.5
    worse = Figures(80.0, 12.0), Figures(40.0, 36.0)  # kept 0.5, grown 3.0
    assert foreign_table(in_process, better).count("| yes |") == 2
    assert foreign_table(in_process, worse).count("| **no** |") == 2
    silent = Figures(0.0, float("nan")), Figures(0.0, float("nan"))  # nothing answered
    assert foreign_table(in_process, silent).count("| **no** |") == 2
