"""Part 7's verdicts (bench/slo.py): the target must hold the moderate load's p99 where the
fixed batch does not, and keep 95 % of the fixed batch's throughput at saturation."""

from __future__ import annotations

import pytest

from bench.config import BenchConfig
from bench.slo import slo_goals

CONFIG = BenchConfig()  # target 100 ms


@pytest.mark.parametrize(
    ("fixed_p99", "slo_p99", "fixed_x", "slo_x", "met"),
    [
        (150.0, 90.0, 120.0, 118.0, ["yes", "yes"]),
        (150.0, 110.0, 120.0, 118.0, ["**no**", "yes"]),  # the target missed
        (90.0, 80.0, 120.0, 118.0, ["**no**", "yes"]),  # the fixed batch met it too: no claim
        (150.0, 90.0, 120.0, 110.0, ["yes", "**no**"]),  # 0.917 x the fixed throughput
    ],
)
def test_each_claim_is_judged_on_its_own(
    fixed_p99: float, slo_p99: float, fixed_x: float, slo_x: float, met: list[str]
) -> None:
    rows = slo_goals(CONFIG, fixed_p99, slo_p99, fixed_x, slo_x)
    assert [row[2] for row in rows] == met
    assert "c=8 engine p99 within 100 ms" in rows[0][0] and "c=64 throughput" in rows[1][0]
