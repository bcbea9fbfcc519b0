"""Part 7: SLO-adaptive batching against the fixed batch (issue 12), side by side in one run.

The same model is served by two servers, up at once and their runs alternating: one with its
config's fixed ``max_batch_size``, one with ``ATTNSERVE_TARGET_LATENCY_MS``
(service/engine/sizing.py caps the batch so that queue wait plus compute stays within the
target, and serves a backlog the target can no longer save at full size). The claims under
test: at a moderate load (c=8) the target holds the p99 where the fixed batch does not, and
at saturation (c=64) it keeps the throughput within 5 % of the fixed batch. The target covers
the engine (queue and forward pass), so the p99 judged is of each answer's own ``timings``;
the client's p99, which also includes decode, post-processing and HTTP, is shown beside it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bench import scenarios, servers
from bench.config import BenchConfig
from bench.goals import verdict
from bench.report import fmt, table
from bench.scenarios import Cell, Load, predict
from bench.stages import ServerProbe

THROUGHPUT_KEPT = 0.95  # of the fixed batch's, at saturation


def run_side_by_side(
    repo: Path,
    work: Path,
    variants: dict[str, dict[str, str]],
    plan: list,
    limits: tuple,
    log: Callable,
) -> dict[str, tuple[list[Cell], float]]:
    """Every variant's server at once (an idle one costs nothing), the plan's repeats taken in
    turn, a round of every cell on each server before the next: a neighbour's burst lands on
    both, and the ratio between them is what the goal judges. Each variant's cells and its
    batch-size cap gauge at the end."""
    rounds = max(repeats for _, _, repeats in plan)
    once = [(scenario, load, 1) for scenario, load, _ in plan]
    with ExitStack() as stack:
        started = {name: stack.enter_context(servers.attnserve(repo, work, env))
                   for name, env in variants.items()}  # fmt: skip
        cells: dict[str, list[Cell]] = {}
        for _ in range(rounds):
            for name, server in started.items():
                measured = scenarios.run_cells(server, once, *limits, True, log)
                if name not in cells:
                    cells[name] = measured
                    continue
                for cell, more in zip(cells[name], measured, strict=True):
                    cell.runs += more.runs
                    cell.server_cpu_s += more.server_cpu_s
                    cell.stages += more.stages
        model = plan[0][0].model
        return {name: (cells[name], cap_gauge(server, model)) for name, server in started.items()}


def cap_gauge(server: servers.ServerProcess, model: str) -> float:
    """The cap the plain (no-maps) batcher of ``model`` holds now; NaN without a target."""
    snapshot = asyncio.run(ServerProbe(server.port, server.pids(), True)())
    labels = frozenset({("model", model), ("maps", "false")})
    return snapshot.samples.get(("attnserve_batch_size_cap", labels), math.nan)


def part_slo(
    repo: Path, config: BenchConfig, work: Path, jpeg: bytes, limits: tuple, log: Callable
) -> list[str]:
    target_ms = config.slo_target_ms
    log(f"# part 7: fixed batch vs target_latency_ms {target_ms:g} at c in {config.slo_loads}")
    request = predict(config.target, jpeg, engine=True)
    plan = [(request, Load(concurrency=c), config.goal_repeats) for c in config.slo_loads]
    variants = {
        "fixed max_batch_size": {},
        f"target_latency_ms {target_ms:g}": {"ATTNSERVE_TARGET_LATENCY_MS": f"{target_ms:g}"},
    }
    measured = run_side_by_side(repo, work, variants, plan, limits, log)
    return slo_text(config, measured)


def slo_goals(
    config: BenchConfig, fixed_p99: float, slo_p99: float, fixed_x: float, slo_x: float
) -> list[list[str]]:
    """The two claims: the target holds the moderate load's p99 (of the engine's time, which
    it bounds) where the fixed batch does not, and costs at most 5 % of the fixed batch's
    throughput at saturation."""
    moderate, saturated = (f"c={c}" for c in config.slo_loads)
    target = config.slo_target_ms
    return [
        [f"{moderate} engine p99 within {target:g} ms with the target, not with the fixed batch",
         f"{fmt(slo_p99)} ms vs {fmt(fixed_p99)} ms",
         verdict(slo_p99 <= target < fixed_p99)],
        [f"{saturated} throughput >= {THROUGHPUT_KEPT:g} x the fixed batch's",
         f"{fmt(slo_x / fixed_x, 3)} x", verdict(slo_x >= THROUGHPUT_KEPT * fixed_x)],
    ]  # fmt: skip


def slo_text(config: BenchConfig, measured: dict[str, tuple[list[Cell], float]]) -> list[str]:
    moderate, saturated = (f"c={c}" for c in config.slo_loads)
    rows, figures = [], []
    for name, (cells, cap) in measured.items():
        by_load = {cell.load: cell for cell in cells}
        low, high = by_load[moderate], by_load[saturated]
        figures.append((low.engine_latency_ms(0.99), high.throughput))
        rows.append([
            name, fmt(low.throughput), fmt(low.latency_ms(0.5)), fmt(low.latency_ms(0.99)),
            fmt(low.engine_latency_ms(0.99)), fmt(low.stage("batch_size")),
            fmt(high.throughput), fmt(high.latency_ms(0.99)), fmt(high.stage("batch_size")),
            fmt(cap, 0),
        ])  # fmt: skip
    (fixed_p99, fixed_x), (slo_p99, slo_x) = figures
    goals = slo_goals(config, fixed_p99, slo_p99, fixed_x, slo_x)
    header = [
        "server", f"{moderate} req/s", "p50 ms", "p99 ms", "engine p99 ms", "mean batch",
        f"{saturated} req/s", "p99 ms", "mean batch", "cap at the end",
    ]  # fmt: skip
    return [
        "## 7. SLO-adaptive batching: a latency target against the fixed batch",
        f"{config.target}, `/predict`, both servers up at once and their runs alternating, "
        f"{config.goal_repeats} repeats per cell, medians. The p99 is the client's (decode "
        "and HTTP included); the engine p99 is of each answer's own queue wait plus forward "
        "pass (its `timings`), which is what the target bounds and what the goal judges.",
        table(header, rows),
        table(["goal (issue 12)", "measured", "met?"], goals),
    ]
