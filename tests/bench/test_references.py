"""The in-process references' rounds (bench/references.py): each round measures part 1's batch
and layout, and the goals get the median of the rounds, not the best."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace

import pytest
import torch

from bench.config import BenchConfig
from bench.references import ReferenceRounds
from bench.report import Reference
from tests.conftest import DemoBuild

CONFIG = replace(BenchConfig(target="shapes-classifier"), reference_cell_s=0.05)
FIRST = Reference(1000.0, 2, 5.0, 800.0, "2 x 1 thread")


@pytest.fixture
def two_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("two_threads")
def test_each_round_measures_part_ones_batch_and_layout(demo_build: DemoBuild) -> None:
    with ExitStack() as stack:
        rounds = ReferenceRounds(stack, demo_build.repo, CONFIG, FIRST)
        assert rounds.kept() == FIRST  # no round yet
        rounds.measure()
        rounds.measure()
    assert len(rounds.rounds) == 2
    for measured in rounds.rounds:
        assert (measured.best_batch, measured.pipeline_layout) == (2, "2 x 1 thread")
        figures = measured.best_images_per_s, measured.single_total_ms
        assert all(math.isfinite(f) and f > 0 for f in (*figures, measured.pipeline_images_per_s))


@pytest.mark.usefixtures("two_threads")
def test_the_kept_reference_is_the_median_of_the_rounds(demo_build: DemoBuild) -> None:
    with ExitStack() as stack:
        rounds = ReferenceRounds(stack, demo_build.repo, CONFIG, FIRST)
    rounds.rounds = [
        Reference(300.0, 2, 12.0, 250.0, FIRST.pipeline_layout),
        Reference(200.0, 2, 10.0, 230.0, FIRST.pipeline_layout),
        Reference(250.0, 2, 30.0, 180.0, FIRST.pipeline_layout),
    ]
    assert rounds.kept() == Reference(250.0, 2, 12.0, 230.0, FIRST.pipeline_layout)
    kept_row = next(line for line in "\n".join(rounds.section()).splitlines() if "kept" in line)
    assert "250" in kept_row and "12.00 ms" in kept_row and "230" in kept_row
