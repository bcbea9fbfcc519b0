"""One benchmark run: the parts in order, on one machine, into one Markdown text.

Part 1 runs first in this process, with no server alive; the servers then run side by side,
taking turns (:mod:`bench.side_by_side`), and the foreign-load and latency-target parts last.
The target's reference figures take their turn at the end of every round of the servers' runs,
and the goals are judged against their medians (:mod:`bench.references` says why).
"""

from __future__ import annotations

import importlib.util
import math
import os
import tempfile
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import torch
import uvicorn

from bench import fixtures, goals, report, scenarios, servers
from bench.config import BenchConfig
from bench.machine import Machine
from bench.parts import (
    ServerCells,
    log,
    part_foreign,
    part_limit,
    part_servers,
)
from bench.peers import PEERS
from bench.references import ReferenceRounds
from bench.slo import part_slo


def peers_rows(config: BenchConfig) -> list[tuple[str, str]]:
    rows = []
    for peer in PEERS:
        if not peer.installed():
            rows.append(("peer", f"{peer.name}: not installed (no {peer.venv.name})"))
            continue
        rows.append(("peer", f"{peer.label()} in {peer.venv.name}: {peer.setup}; "
                             f"c in {config.peer_concurrencies}"))  # fmt: skip
    return rows


def settings_rows(config: BenchConfig, repo: Path, jpeg: bytes, quick: bool, rate: float) -> list:
    batching = fixtures.model_config(repo, config.target).batching
    env = {k: v for k, v in os.environ.items() if k.startswith("ATTNSERVE_")}
    env["ATTNSERVE_NUM_THREADS"] = str(servers.TORCH_THREADS)
    return [
        ("mode", "quick (harness check, not a measurement)" if quick else "full"),
        (
            "benchmark model",
            f"{config.target}, {len(jpeg)}-byte JPEG per request (a multipart file part), "
            "random weights"
            if config.target not in config.demo_models
            else config.target,
        ),
        (
            "service batching (config.json)",
            f"max_batch_size {batching.max_batch_size}, "
            f"max_queue_delay_ms {batching.max_queue_delay_ms:g}",
        ),
        ("server environment", ", ".join(f"{k}={v}" for k, v in sorted(env.items()))),
        ("HTTP server", f"uvicorn {uvicorn.__version__}, defaults ({uvicorn_stack()}), 1 process"),
        *peers_rows(config),
        (
            "load generator",
            "bench/loadgen.py: raw asyncio HTTP/1.1 keep-alive, in the bench process, same machine",
        ),
        (
            "runs",
            f"{config.warmup_s:g} s warm-up + {config.run_s:g} s measured (costs "
            f"{config.cost_run_s:g} s); {config.goal_repeats} repeats at c in "
            f"{config.goal_concurrencies}, else {config.repeats}; every server started once, the "
            "servers taking turns load by load and round by round, the idle ones stopped "
            "(SIGSTOP); medians",
        ),
        ("open loop", f"{rate:g} req/s = {config.open_rate_fraction:g} x the in-process best"),
    ]


def uvicorn_stack() -> str:
    """What uvicorn's ``auto`` loop and HTTP settings pick here: the C ones when installed."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop} loop, {http}"


def open_rate(config: BenchConfig, reference: report.Reference) -> float:
    if math.isnan(reference.best_images_per_s):
        return config.default_open_rate
    rate = round(config.open_rate_fraction * reference.best_images_per_s)
    return float(min(config.max_open_rate, max(1, rate)))


def run(config: BenchConfig, parts: set[str], demo_repo: Path, quick: bool) -> str:
    torch.set_num_threads(servers.TORCH_THREADS)
    started = time.monotonic()
    sections: list[str] = []
    cells = ServerCells()
    tail_sections: list[str] = []
    reference = report.Reference()
    limits = (config.run_s, config.warmup_s, config.max_requests)
    with tempfile.TemporaryDirectory(prefix="attnserve-bench-") as tmp:
        work = Path(tmp)
        demo = fixtures.ensure_demo_repo(demo_repo, log)
        repo = fixtures.build_work_repo(
            demo, work, config.target, config.input_size, config.demo_models
        )
        jpeg = fixtures.request_image(fixtures.model_config(repo, config.target))
        seg_jpeg = fixtures.request_image(fixtures.model_config(repo, config.segmenter))
        if "limit" in parts:
            text, reference = part_limit(repo, config)
            sections += text
        rate = open_rate(config, reference)
        if parts & {"service", "costs", "baseline", "peers"}:
            with ExitStack() as stack:
                rounds = (
                    ReferenceRounds(stack, repo, config, reference)
                    if reference.best_batch
                    else None
                )
                cells = part_servers(
                    config, parts, repo, work, (jpeg, seg_jpeg), rate, limits, rounds
                )
            if rounds is not None:
                reference = rounds.kept()
                sections += rounds.section()
        if "foreign" in parts:
            tail_sections = part_foreign(repo, config, reference, work, jpeg, limits)
        if "slo" in parts:
            tail_sections += part_slo(repo, config, work, jpeg, limits, log)
        settings = settings_rows(config, repo, jpeg, quick, rate)
    sections += result_sections(
        cells.service,
        cells.base,
        cells.peers,
        cells.costs,
        reference,
        cells.peers_note,
        target=config.target,
    )
    sections += tail_sections
    header = [
        f"# attnserve benchmark, {date.today().isoformat()}",
        report.table(["machine", ""], Machine.describe().rows()),
        report.table(["setting", ""], settings),
    ]
    footer = f"Wall time of the whole run: {time.monotonic() - started:.0f} s."
    return "\n\n".join([*header, *sections, footer]) + "\n"


def result_sections(
    service: list[scenarios.Cell],
    base: list[scenarios.Cell],
    peers: list[scenarios.Cell],
    costs: list[scenarios.Cell],
    reference: report.Reference,
    peers_note: str | None = None,
    *,
    target: str,
) -> list[str]:
    sections = []
    if service or base or peers or peers_note:
        sections.append("## 2-3. The service and the baseline under load")
    if service or base or peers:
        sections += [
            "Ratios divide by the in-process reference of the same model: the median of its "
            "rounds (above).",
            report.load_table(service + base + peers, reference),
        ]
    if peers_note:
        sections.append(peers_note)
    if costs:
        sections += [
            "## 4. The cost of attention maps, masks and the v2 endpoint",
            "Each row against the plain request of its model at the same load "
            "(`/predict` for the classifier, `mask=none` for the segmenter), "
            "interleaved in the same rounds.",
            report.cost_table(costs),
        ]
    if service or costs:
        sections += [
            "## 5. Per-stage breakdown (attnserve's own histograms, window means)",
            "`server other` = server total - decode - queue - batch inference "
            "(routing, post-processing, encoding); `HTTP+client` = client mean - "
            "server total.",
            report.stages_table(service + costs),
            "The server's CPU per request by thread role (core-ms, window medians; the "
            "service names its threads, see service/thread_names.py), against the in-process "
            f"pipeline's {servers.TORCH_THREADS} cores at its best layout's throughput.",
            report.cpu_table(service + costs, reference, servers.TORCH_THREADS, target),
        ]
    if reference.best_batch and (service or costs):
        sections += ["## Goals", goals.goals_table(service, base, peers, costs, reference)]
    return sections
