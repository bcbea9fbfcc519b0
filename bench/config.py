"""How much of each part to run: the full preset fits in 15 minutes on 2 cores, the quick one
in well under a minute (a smoke test of the harness, not a measurement)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# The stage breakdown comes with "service"; "peers" needs their venvs (`make peers`).
PARTS = ("limit", "service", "baseline", "peers", "costs", "foreign", "slo")


@dataclass(frozen=True)
class BenchConfig:
    target: str = "se_resnet_sagan"  # the model the service is loaded with; a zoo name or demo
    input_size: int = 224  # when ``target`` is exported
    demo_models: tuple[str, ...] = ("shapes-classifier", "shapes-segmenter")
    segmenter: str = "shapes-segmenter"  # for the cost of masks
    # part 1
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    limit_cell_s: float = 3.0  # per batch size (and the cap: a larger size stops the sweep)
    demo_limit_cell_s: float = 0.9
    reference_cell_s: float = 2.0  # per figure, in each round of parts 2-3 (bench/references.py)
    # parts 2-4
    concurrencies: tuple[int, ...] = (1, 8, 32, 64)
    baseline_concurrencies: tuple[int, ...] = (1, 32, 64)  # as the peers: room for part 1's layouts
    peer_concurrencies: tuple[int, ...] = (1, 32, 64)  # the peers: where the goals are read
    goal_concurrencies: tuple[int, ...] = (1, 32, 64)  # repeated more: the goals are read there
    cost_concurrencies: tuple[int, ...] = (1, 32)
    foreign_concurrencies: tuple[int, ...] = (1, 32)  # part 6: quiet, then one core busy
    # part 7: a moderate load and saturation, with and without the latency target (ms), which
    # sits below the fixed batch's p99 at the moderate load (130-180 ms at c=8 here)
    slo_loads: tuple[int, int] = (8, 64)
    slo_target_ms: float = 100.0
    # Of the best in-process (forward-only) throughput: a moderate load. The service also
    # decodes and parses HTTP on the same cores, so on 2 cores it saturates near 0.6 of it.
    open_rate_fraction: float = 0.4
    default_open_rate: float = 30.0  # when part 1 did not run
    max_open_rate: float = 500.0
    run_s: float = 6.0
    cost_run_s: float = 4.0
    warmup_s: float = 1.5
    repeats: int = 2
    goal_repeats: int = 3
    max_requests: int = 50_000  # per run, whatever the duration

    def quick(self) -> BenchConfig:
        return replace(
            self,
            batch_sizes=(1, 4, 16),
            limit_cell_s=0.3,
            demo_limit_cell_s=0.2,
            reference_cell_s=0.2,
            concurrencies=(1, 8),
            baseline_concurrencies=(1, 8),
            peer_concurrencies=(1, 8),
            goal_concurrencies=(1,),
            cost_concurrencies=(1, 32),  # where the costs of maps, v2 and gRPC are read
            run_s=1.5,
            cost_run_s=1.0,
            warmup_s=0.5,
            repeats=1,
            goal_repeats=1,
            max_requests=5_000,
        )
