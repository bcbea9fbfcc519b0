"""The in-process references, measured again in every round of the side-by-side runs.

Part 1 sweeps every batch size and threading layout and keeps each one's best round: that is
how it finds the best batch and the best layout. The goals then divide the servers' figures by
the target's figures at that batch and layout, and the servers' figures are medians of rounds
that took turns with each other (:mod:`bench.side_by_side`). Divided by a best-of-rounds figure
measured at other moments, a server's share is judged against the machine's quietest spell and
its own typical one. So the references take turns too: at the end of every round of server
runs, with every server stopped, the target runs in-process at part 1's best batch, as one
image with its decode, and in part 1's best pipeline layout; the reference the goals divide by
is the median of those rounds, the statistic the servers get.

Until 2026-12-03 the kept reference was the better of part 1 and one measurement after the
load runs, against the servers' medians of 3.
"""

from __future__ import annotations

import statistics
from contextlib import ExitStack
from pathlib import Path

import torch

from bench import fixtures, limit, pipeline, report
from bench.config import BenchConfig


class ReferenceRounds:
    """Measures the target in-process once per call to :meth:`measure`; :meth:`kept` is the
    median of every call, :meth:`section` the report's table of them."""

    def __init__(
        self, stack: ExitStack, repo: Path, config: BenchConfig, first: report.Reference
    ) -> None:
        """``first``: part 1's reference, whose batch and layout every round uses. The process
        layout's processes, when that is the layout, start here and stop with ``stack``."""
        self.first = first
        self.target = config.target
        self.cell_s = config.reference_cell_s
        self.model_config = fixtures.model_config(repo, config.target)
        model_file = fixtures.latest_model_file(repo, config.target)
        self.model = limit.load(model_file)
        self.jpeg = fixtures.request_image(self.model_config)
        runs = pipeline.layout_runs(stack, self.model, self.model_config, self.jpeg,
                                    first.best_batch, torch.get_num_threads(), self.cell_s,
                                    model_file, names=(first.pipeline_layout,))  # fmt: skip
        self.pipeline_run = runs[first.pipeline_layout]  # part 1 measured it, so it fits
        self.rounds: list[report.Reference] = []

    def measure(self) -> None:
        """One round: the best batch's forward, one image with its decode, the pipeline."""
        batch = limit.measure_batches(self.target, self.model, self.model_config,
                                      (self.first.best_batch,), self.cell_s, rounds=1)  # fmt: skip
        single = limit.measure_single_image(
            self.target, self.model, self.model_config, self.jpeg, self.cell_s, rounds=1
        )
        self.rounds.append(
            report.Reference(
                batch[0].images_per_s,
                self.first.best_batch,
                single.total_ms,
                self.pipeline_run(),
                self.first.pipeline_layout,
            )
        )

    def kept(self) -> report.Reference:
        """The medians of the rounds (part 1's reference when no round ran)."""
        if not self.rounds:
            return self.first

        def median(figure: str) -> float:
            return statistics.median(getattr(r, figure) for r in self.rounds)

        return report.Reference(
            median("best_images_per_s"),
            self.first.best_batch,
            median("single_total_ms"),
            median("pipeline_images_per_s"),
            self.first.pipeline_layout,
        )

    def section(self) -> list[str]:
        rows = [
            [
                what,
                f"{report.fmt(r.best_images_per_s)} img/s",
                f"{report.fmt(r.single_total_ms, 2)} ms",
                f"{report.fmt(r.pipeline_images_per_s)} img/s",
            ]
            for what, r in (
                ("part 1 (best of its rounds)", self.first),
                *((f"after round {i}", r) for i, r in enumerate(self.rounds, 1)),
                ("kept: the median of the rounds", self.kept()),
            )
        ]
        header = ["when", f"batch {self.first.best_batch} forward", "1 image incl. decode",
                  f"pipeline ({self.first.pipeline_layout})"]  # fmt: skip
        return [
            f"The reference for the goals: {self.target} in-process, measured at the end of every "
            "round of the side-by-side runs with every server stopped (`bench/references.py`), "
            f"{self.cell_s:g} s per figure; the goals divide by the median, as the servers' "
            "figures are medians of their rounds.",
            report.table(header, rows),
        ]
