"""Markdown tables for the results file and stdout, and the check against issue 5's goals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.limit import BatchCell, SingleImage
from bench.scenarios import Cell
from bench.stages import Stages

# Issue 5's peers at concurrency 32 on this kind of machine (p99, ms): the bar for goal 3 when
# LitServe was not measured in the same run (``python -m bench peers``).
PEER_P99_MS = {"LitServe 0.2.19": 325.0, "TorchServe 0.12": 497.0, "hand-written FastAPI": 686.0}


def fmt(value: float, digits: int = 1) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def limit_table(cells: list[BatchCell]) -> str:
    best = {}
    for cell in cells:
        if cell.model not in best or cell.images_per_s > best[cell.model].images_per_s:
            best[cell.model] = cell
    rows = [
        [
            c.model,
            c.batch,
            c.calls,
            fmt(c.median_ms),
            fmt(c.p90_ms),
            fmt(c.ms_per_image, 2),
            fmt(c.images_per_s) + (" **best**" if best[c.model] is c else ""),
        ]
        for c in cells
    ]
    return table(
        [
            "model",
            "batch",
            "calls",
            "ms/batch (median of quietest round)",
            "ms/batch p90",
            "ms/image",
            "images/s",
        ],
        rows,
    )


def single_table(singles: list[SingleImage]) -> str:
    rows = [
        [
            s.model,
            s.calls,
            fmt(s.decode_ms, 2),
            fmt(s.forward_ms, 2),
            fmt(s.total_ms, 2),
            fmt(s.total_p90_ms, 2),
            fmt(1000 / s.total_ms),
        ]
        for s in singles
    ]
    return table(
        [
            "model",
            "calls",
            "decode + pre-process ms",
            "forward ms (batch 1)",
            "total ms (median of quietest round)",
            "total p90 ms",
            "images/s",
        ],
        rows,
    )


@dataclass(frozen=True)
class Reference:
    """Part 1's figures for the target model, which parts 2-4 are divided by."""

    best_images_per_s: float = math.nan
    best_batch: int = 0
    single_total_ms: float = math.nan


def load_table(cells: list[Cell], reference: Reference) -> str:
    rows = []
    for c in cells:
        low, high = c.throughput_range
        spread = f" ({fmt(low)}-{fmt(high)})" if len(c.runs) > 1 else ""
        is_c1 = c.load == "c=1"
        rows.append(
            [
                c.server,
                c.scenario.name,
                c.load,
                len(c.runs),
                fmt(c.throughput) + spread,
                fmt(c.latency_ms(0.5)),
                fmt(c.latency_ms(0.9)),
                fmt(c.latency_ms(0.99)),
                c.errors,
                fmt(c.cpu_percent("client"), 0),
                fmt(c.cpu_percent("server"), 0),
                fmt(c.throughput / reference.best_images_per_s, 2),
                fmt(c.latency_ms(0.5) / reference.single_total_ms, 2) if is_c1 else "",
            ]
        )
    return table(
        [
            "server",
            "request",
            "load",
            "runs",
            "req/s median (range)",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "errors",
            "client CPU %",
            "server CPU %",
            "x in-process best",
            "p50 / in-process 1 image",
        ],
        rows,
    )


def cost_table(cells: list[Cell]) -> str:
    """Every scenario against the plain request of its model at the same load."""
    plain = {
        (c.scenario.model, c.load): c for c in cells if c.scenario.name in ("/predict", "mask=none")
    }
    rows = []
    for c in cells:
        base = plain.get((c.scenario.model, c.load))
        p50_ratio = c.latency_ms(0.5) / base.latency_ms(0.5) if base else math.nan
        thr_ratio = base.throughput / c.throughput if base and c.throughput else math.nan
        rows.append(
            [
                c.scenario.model,
                c.scenario.name,
                c.load,
                fmt(c.throughput),
                fmt(c.latency_ms(0.5)),
                fmt(c.latency_ms(0.99)),
                c.errors,
                fmt(p50_ratio, 2),
                fmt(thr_ratio, 2),
            ]
        )
    return table(
        [
            "model",
            "request",
            "load",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "p50 / plain",
            "plain req/s / req/s",
        ],
        rows,
    )


def stages_table(cells: list[Cell]) -> str:
    rows = [
        [c.scenario.name, c.load] + [fmt(c.stage(f), 2) for f in Stages.FIELDS]
        for c in cells
        if c.stages
    ]
    return table(
        [
            "request",
            "load",
            "decode+pre ms",
            "queue ms",
            "inference ms/batch",
            "mean batch",
            "inference ms/image",
            "server total ms",
            "server other ms",
            "HTTP+client ms",
            "client mean ms",
        ],
        rows,
    )


def goals_table(
    service: list[Cell],
    baseline: list[Cell],
    peers: list[Cell],
    costs: list[Cell],
    reference: Reference,
) -> str:
    def find(cells: list[Cell], load: str, name: str = "/predict") -> Cell | None:
        return next((c for c in cells if c.load == load and c.scenario.name == name), None)

    rows = []
    for load in ("c=32", "c=64"):
        cell = find(service, load)
        if cell:
            ratio = cell.throughput / reference.best_images_per_s
            best_run = cell.throughput_range[1]
            rows.append(
                [
                    f"throughput at {load} >= 95 % of in-process best "
                    f"({fmt(reference.best_images_per_s)} img/s, batch "
                    f"{reference.best_batch})",
                    f"median run {fmt(cell.throughput)} req/s = {fmt(100 * ratio, 0)} % (best run "
                    f"{fmt(100 * best_run / reference.best_images_per_s, 0)} %); compute alone in "
                    f"the service: {fmt(1000 / cell.stage('inference_image_ms'))} img/s at mean "
                    f"batch {fmt(cell.stage('batch_size'))}",
                    verdict(ratio >= 0.95),
                ]
            )
    cell = find(service, "c=1")
    if cell:
        ratio = cell.latency_ms(0.5) / reference.single_total_ms
        rows.append(
            [
                f"c=1 p50 <= 1.1 x in-process 1 image incl. decode "
                f"({fmt(reference.single_total_ms, 2)} ms)",
                f"{fmt(cell.latency_ms(0.5), 2)} ms = {fmt(ratio, 2)} x",
                verdict(ratio <= 1.1),
            ]
        )
    cell = find(service, "c=32")
    if cell:
        rows.append(p99_goal_row(cell, find(baseline, "c=32"), find(peers, "c=32")))
    for load in sorted({c.load for c in costs}):
        plain, maps = find(costs, load), find(costs, load, "attention=true")
        if plain and maps:
            p50 = maps.latency_ms(0.5) / plain.latency_ms(0.5)
            thr = plain.throughput / maps.throughput if maps.throughput else math.inf
            rows.append(
                [
                    f"attention maps <= 1.3 x the plain request at {load}",
                    f"p50 {fmt(p50, 2)} x, throughput cost {fmt(thr, 2)} x",
                    verdict(max(p50, thr) <= 1.3),
                ]
            )
    return table(["goal (issue 5)", "measured", "met?"], rows)


def p99_goal_row(cell: Cell, base: Cell | None, litserve: Cell | None) -> list[str]:
    """attnserve's p99 at c=32 against the peers measured in this run; against issue 5's best
    quoted peer only while LitServe was not measured here (the quote is another run's)."""
    p99 = cell.latency_ms(0.99)
    here = [c for c in (litserve, base) if c]
    measured = "; ".join(f"{c.server} here {fmt(c.latency_ms(0.99))} ms" for c in here)
    quoted = "issue 5: LitServe 325, TorchServe 497, FastAPI 577-686"
    met = all(p99 <= c.latency_ms(0.99) for c in here)
    if litserve:
        goal = "p99 at c=32 <= the peers' p99 measured in this run (LitServe, baseline)"
        ratio = f" = {fmt(p99 / litserve.latency_ms(0.99), 2)} x {litserve.server}'s"
    else:
        best_peer = min(PEER_P99_MS.values())
        goal = f"p99 at c=32 <= peers' p99 (best peer in issue 5: {fmt(best_peer, 0)} ms)"
        ratio = ""
        met = met and p99 <= best_peer
    context = "; ".join(part for part in (measured, quoted) if part)
    return [goal, f"{fmt(p99)} ms{ratio} ({context})", verdict(met)]


def verdict(met: bool) -> str:
    return "yes" if met else "**no**"
