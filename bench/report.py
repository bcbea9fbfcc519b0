"""Markdown tables for the results file and stdout (the goals are :mod:`bench.goals`')."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.limit import BatchCell, SingleImage
from bench.pipeline import PipelineCell, best_layout
from bench.scenarios import Cell
from bench.stages import Stages
from bench.stats import median_of
from service.thread_names import DECODE, INFERENCE, POSTPROCESS


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
    pipeline_images_per_s: float = math.nan  # decode + forward + top-k, the best layout
    pipeline_layout: str = ""


def pipeline_table(cells: list[PipelineCell]) -> str:
    best = best_layout(cells)
    rows = [
        [c.layout, c.batch, fmt(c.images_per_s) + (" **best**" if c is best else "")] for c in cells
    ]
    return table(["layout (threads x torch threads each)", "batch", "images/s"], rows)


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


def cpu_table(cells: list[Cell], reference: Reference, threads: int, target: str) -> str:
    """Core-ms per request by thread role, against the in-process pipeline's core-ms per image
    (``threads`` cores busy at its best layout's throughput), which is measured for the
    ``target`` model only: the other models' rows have no ratio."""
    roles = (INFERENCE, DECODE, POSTPROCESS, "other")
    pipeline_ms = threads * 1000 / reference.pipeline_images_per_s
    rows = []
    for c in cells:
        if not any(stage.cpu_ms for stage in c.stages):
            continue
        shares = [median_of([s.cpu_ms.get(role, math.nan) for s in c.stages]) for role in roles]
        total = sum(shares)
        ratio = total / pipeline_ms if c.scenario.model == target else math.nan
        rows.append([c.scenario.name, c.load, *(fmt(x, 2) for x in shares), fmt(total, 2),
                     fmt(ratio, 2)])  # fmt: skip
    header = ["request", "load", "inference (+ OpenMP)", "decode", "post-process",
              "event loop and the rest", "total core-ms", "x in-process pipeline"]  # fmt: skip
    return table(header, rows)
