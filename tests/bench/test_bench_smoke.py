"""The whole harness, every part, on a tiny configuration: the demo classifier as the target,
two batch sizes, half-second runs. Checks the tables' shape and that nothing failed; no timing.
The peers' venvs are hidden, as in CI: their part is skipped, with its line in the report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench import peers
from bench.config import PARTS, BenchConfig
from bench.runner import run
from tests.conftest import DemoBuild

TINY = replace(
    BenchConfig(target="shapes-classifier").quick(),
    batch_sizes=(1, 2),
    limit_cell_s=0.1,
    demo_limit_cell_s=0.1,
    concurrencies=(1, 2),
    baseline_concurrencies=(1,),
    cost_concurrencies=(2,),
    slo_loads=(1, 2),
    run_s=0.5,
    cost_run_s=0.5,
    warmup_s=0.2,
    max_open_rate=10.0,
    max_requests=2_000,
)


def header_of(text: str, first_column: str, second_column: str) -> list[str]:
    """The column names of the table whose header starts with the two given columns."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == [first_column, second_column]:
            return cells
    raise AssertionError(f"no table starting with {first_column!r} | {second_column!r}")


def rows_of(text: str, first_cell: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            rows.append(cells)
    return rows


@pytest.mark.slow
def test_every_part_prints_its_table(
    demo_build: DemoBuild, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(peers.Peer, "venv", property(lambda peer: tmp_path / peer.package))
    threads = torch.get_num_threads()
    try:
        text = run(TINY, set(PARTS), demo_build.repo, quick=True)
    finally:
        torch.set_num_threads(threads)
    for heading in ("## 1.", "## 2-3.", "## 4.", "## 5.", "## Goals", "## 6.", "## 7."):
        assert heading in text
    assert "LitServe, mosec, TorchServe not measured: run `make bench`" in text
    assert {"batch", "images/s", "ms/batch (median of quietest round)"} <= set(
        header_of(text, "model", "batch")
    )
    layouts = header_of(text, "layout (threads x torch threads each)", "batch")
    assert layouts[2] == "images/s"
    assert "| 1 x 2 threads |" in text and "| 2 x 1 thread |" in text  # the bench's 2 threads
    assert "1 image incl. decode" in header_of(text, "when", "batch 2 forward")
    (first_round,) = (row[1:] for row in rows_of(text, "after round 1"))  # TINY: one round
    assert [row[1:] for row in rows_of(text, "kept: the median of the rounds")] == [first_round]
    load = header_of(text, "server", "request")
    assert {
        "req/s median (range)",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "errors",
        "client CPU %",
        "server CPU %",
        "x in-process best",
        "p50 / in-process 1 image",
    } <= set(load)
    assert {
        "decode+pre ms",
        "queue ms",
        "inference ms/batch",
        "inference ms/image",
        "server total ms",
        "HTTP+client ms",
    } <= set(header_of(text, "request", "load"))
    assert "| request | load | inference (+ OpenMP) | decode | post-process |" in text
    cpu_rows = [r for r in rows_of(text, "/predict") if len(r) == 8]
    assert cpu_rows and all(float(row[2]) > 0 and float(row[5]) > 0 for row in cpu_rows), cpu_rows
    assert all(row[7] != "-" for row in cpu_rows)  # the target's rows: against its pipeline
    segmenter_rows = [r for r in rows_of(text, "mask=none") if len(r) == 8]
    assert segmenter_rows and all(row[7] == "-" for row in segmenter_rows)  # no pipeline of its own
    served = rows_of(text, "attnserve") + rows_of(text, "baseline")
    loads = {(row[0], row[2]) for row in served}
    assert {("attnserve", "c=1"), ("attnserve", "c=2"), ("baseline", "c=1")} <= loads
    assert any(row[2].startswith("open ") for row in served)
    errors = load.index("errors")
    assert all(row[errors] == "0" for row in served), served
    cost_rows = [row for row in rows_of(text, "shapes-classifier") if len(row) == 9]
    costs = {row[1] for row in cost_rows}
    assert {"/predict", "attention=true", "v2 JSON out", "v2 binary out", "gRPC raw out"} <= costs
    (grpc_row,) = [row for row in cost_rows if row[1] == "gRPC raw out"]
    assert grpc_row[6] == "0", grpc_row  # no errors (throughput is not asserted: a timing)
    assert {"mask=none", "mask=png"} <= {row[1] for row in rows_of(text, "shapes-segmenter")}
    assert "cap at the end" in header_of(text, "server", "c=1 req/s")
    fixed, (slo,) = rows_of(text, "fixed max_batch_size"), rows_of(text, "target_latency_ms 100")
    assert fixed[0][-1] == "-" and int(slo[-1]) >= 1  # only the target exports its cap
    for row in (fixed[0], slo):  # the engine's p99, read from the answers, is within the client's
        client_p99, engine_p99 = float(row[3]), float(row[4])
        assert 0 < engine_p99 <= client_p99, row
