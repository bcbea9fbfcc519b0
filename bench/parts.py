"""Each part's measurements: part 1 in-process, the plans of the load runs, the servers side
by side (with the in-process references' rounds), and the foreign-load part. :mod:`bench.runner`
calls them in order and assembles the report."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench import fixtures, foreign, limit, pipeline, report, scenarios, servers
from bench.config import BenchConfig
from bench.peers import PEERS, Peer
from bench.references import ReferenceRounds
from bench.scenarios import Load, Scenario, grpc_infer, predict, upload, v2_infer
from bench.side_by_side import Entry, continued, lineup, run_side_by_side
from models.repository.layout import model_dir


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure_model(
    repo: Path, name: str, config: BenchConfig, sizes: tuple[int, ...]
) -> tuple[list[limit.BatchCell], limit.SingleImage]:
    model_config = fixtures.model_config(repo, name)
    model = limit.load(fixtures.latest_model_file(repo, name))
    cell_s = config.limit_cell_s if name == config.target else config.demo_limit_cell_s
    cells = limit.measure_batches(name, model, model_config, sizes, cell_s)
    jpeg = fixtures.request_image(model_config)
    return cells, limit.measure_single_image(name, model, model_config, jpeg, cell_s)


def measure_pipeline(repo: Path, config: BenchConfig, batch: int) -> list[pipeline.PipelineCell]:
    """The target's whole pipeline in-process at ``batch``, in each threading layout."""
    model_config = fixtures.model_config(repo, config.target)
    model_file = fixtures.latest_model_file(repo, config.target)
    model = limit.load(model_file)
    jpeg = fixtures.request_image(model_config)
    threads = torch.get_num_threads()
    return pipeline.measure_pipeline(
        model, model_config, jpeg, batch, threads, config.limit_cell_s, model_file=model_file
    )


def part_limit(repo: Path, config: BenchConfig) -> tuple[list[str], report.Reference]:
    cells, singles = [], []
    for name in dict.fromkeys([*config.demo_models, config.target]):  # in order, once each
        log(f"# part 1: {name} in-process, batch sizes {config.batch_sizes}")
        model_cells, single = measure_model(repo, name, config, config.batch_sizes)
        cells += model_cells
        singles.append(single)
    best = limit.best(cells, config.target)
    single = next(s for s in singles if s.model == config.target)
    log(f"# part 1: {config.target} decode + forward + top-k in-process, batch {best.batch}")
    layouts = measure_pipeline(repo, config, best.batch)
    limit_cell = pipeline.best_layout(layouts)
    reference = report.Reference(
        best.images_per_s, best.batch, single.total_ms, limit_cell.images_per_s, limit_cell.layout
    )
    text = [
        "## 1. The limit: the model in-process",
        "TorchScript as exported, loaded by `TorchScriptFormat().load` (optimize_for_inference), "
        f"`torch.set_num_threads({torch.get_num_threads()})`, `torch.inference_mode()`, every "
        "batch size warmed first, then 3 round-robin rounds; a figure is the median of its "
        "quietest round (p90 over every call shows the machine's noise).",
        report.limit_table(cells),
        "In-process single image, decode + pre-process (`service.imaging.load_for_model` on the "
        "request JPEG) + batch-1 forward: the concurrency-1 reference.",
        report.single_table(singles),
        f"The true limit: {config.target}'s whole pipeline in-process (`bench/pipeline.py`), "
        f"decode + pre-process of each JPEG, stack, forward at batch {best.batch}, top-k, in "
        "each threading layout of the same threads (best of its rounds).",
        report.pipeline_table(layouts),
    ]
    return text, reference


def repeats_for(config: BenchConfig, concurrency: int) -> int:
    return config.goal_repeats if concurrency in config.goal_concurrencies else config.repeats


def closed_plan(config: BenchConfig, jpeg: bytes, concurrencies: tuple[int, ...]) -> list:
    plain = predict(config.target, jpeg)
    return [(plain, Load(concurrency=c), repeats_for(config, c)) for c in concurrencies]


def service_plan(config: BenchConfig, jpeg: bytes, rate: float) -> list:
    plain = predict(config.target, jpeg)
    return [
        *closed_plan(config, jpeg, config.concurrencies),
        (plain, Load(rate=rate), config.repeats),
    ]


def cost_plan(config: BenchConfig, jpeg: bytes, seg_jpeg: bytes, grpc_port: int) -> list:
    target, seg = config.target, config.segmenter
    scenarios_ = [
        predict(target, jpeg),
        predict(target, jpeg, "attention=true", "attention=true"),
        v2_infer(target, jpeg, False),
        v2_infer(target, jpeg, True),
        grpc_infer(target, jpeg, grpc_port),
        predict(seg, seg_jpeg, "mask=none", "mask=none"),
        predict(seg, seg_jpeg, "mask=png", "mask=png"),
    ]
    return [
        (s, Load(concurrency=c), config.repeats)
        for c in config.cost_concurrencies
        for s in scenarios_
    ]


def part_foreign(
    repo: Path,
    config: BenchConfig,
    reference: report.Reference,
    work: Path,
    jpeg: bytes,
    limits: tuple,
) -> list[str]:
    """In-process and the service, each measured quiet and then with one core busy."""
    log("# part 6: in-process and attnserve, quiet and with one core busy")

    def in_process() -> foreign.Figures:
        cells, single = measure_model(repo, config.target, config, (reference.best_batch or 16,))
        return foreign.Figures(cells[0].images_per_s, single.total_ms)

    in_process_figures = foreign.both(in_process)  # before the server starts: nothing else runs
    with servers.attnserve(repo, work) as server:
        plan = closed_plan(config, jpeg, config.foreign_concurrencies)

        def service() -> foreign.Figures:
            cells = scenarios.run_cells(server, plan, *limits, False, log)
            return foreign.service_figures(cells)

        measured = in_process_figures, foreign.both(service)
    return [
        "## 6. Foreign load: another process busy on one core",
        f"{config.target}: in-process at batch {reference.best_batch or 16} and one image incl. "
        "decode, then attnserve at c=1 and c=32, each quiet and then beside a bounded "
        "`python -c` busy loop (`bench/foreign.py`).",
        foreign.foreign_table(*measured),
    ]


def peers_skipped(missing: list[Peer]) -> str | None:
    """The line that says which peers did not run, and how to get them."""
    if not missing:
        return None
    venvs = ", ".join(str(peer.venv.name) for peer in missing)
    names = ", ".join(peer.name for peer in missing)
    return f"{names} not measured: run `make bench` or `make peers` ({venvs}), see README."


def peer_plan(config: BenchConfig, peer: Peer, jpeg: bytes) -> list:
    """The /predict rows of the service, sent to the peer's own path."""
    request = Scenario("/predict", config.target, "predict", upload(peer.path, jpeg))
    loads = config.peer_concurrencies
    return [(request, Load(concurrency=c), repeats_for(config, c)) for c in loads]


@dataclass
class ServerCells:
    """Parts 2-4's cells, per server."""

    service: list[scenarios.Cell] = field(default_factory=list)
    base: list[scenarios.Cell] = field(default_factory=list)
    peers: list[scenarios.Cell] = field(default_factory=list)
    costs: list[scenarios.Cell] = field(default_factory=list)
    peers_note: str | None = None  # the peers that did not run, and how to get them


def part_servers(
    config: BenchConfig,
    parts: set[str],
    repo: Path,
    work: Path,
    jpegs: tuple[bytes, bytes],
    rate: float,
    limits: tuple,
    references: ReferenceRounds | None = None,
) -> ServerCells:
    """Parts 2-3 side by side (:mod:`bench.side_by_side`): attnserve, the baseline and every
    installed peer, started once and taking turns, with ``references`` measured at the end of
    every round; then part 4, the costs, on attnserve alone. ``jpegs``: the target's and the
    segmenter's request images."""
    jpeg, seg_jpeg = jpegs
    result = ServerCells()
    target_dir = model_dir(repo, config.target)
    peers = [peer for peer in PEERS if "peers" in parts and peer.installed()]
    with ExitStack() as stack, lineup(stack) as admit:
        entries: list[Entry] = []
        grpc_port = servers.free_port()
        grpc_env = {"ATTNSERVE_GRPC_PORT": str(grpc_port)}
        service = base = None
        if parts & {"service", "costs"}:
            service = admit(stack.enter_context(servers.attnserve(repo, work, grpc_env)))
            if "service" in parts:
                entries.append(Entry(service, service_plan(config, jpeg, rate), True))
        if "baseline" in parts:
            base = admit(stack.enter_context(servers.baseline(target_dir, work)))
            plan = closed_plan(config, jpeg, config.baseline_concurrencies)
            entries.append(Entry(base, plan, False))
        for peer in peers:
            server = admit(stack.enter_context(peer.serve(target_dir, work)))
            entries.append(Entry(server, peer_plan(config, peer, jpeg), False))
        if entries:
            names = ", ".join(entry.server.name for entry in entries)
            log(f"# parts 2-3 side by side, taking turns: {names}")
        after_round = references.measure if references is not None else None
        cells = run_side_by_side(entries, *limits, log, after_round)
        for entry, entry_cells in zip(entries, cells, strict=True):
            if entry.server is service:
                result.service = entry_cells
            elif entry.server is base:
                result.base = entry_cells
            else:
                result.peers += entry_cells
        if service is not None and "costs" in parts:
            log("# part 4: the cost of maps, masks, v2 and gRPC")
            plan = cost_plan(config, jpeg, seg_jpeg, grpc_port)
            cost_limits = (config.cost_run_s, *limits[1:])
            with continued(service):
                result.costs = scenarios.run_cells(service, plan, *cost_limits, True, log)
    if "peers" in parts:
        result.peers_note = peers_skipped([peer for peer in PEERS if not peer.installed()])
        if result.peers_note:
            log(f"# part 3: {result.peers_note}")
    return result
