"""What every attention test shares: TorchScript's plain interpreter."""

from typing import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def plain_jit_interpreter() -> Iterator[None]:
    """The profiling executor spends about a second re-optimising every scripted MHA graph on
    its first runs; equality checks do not need that, so the tests stay fast without it
    (tests/models/zoo scripts whole architectures with the default executor)."""
    with torch.jit.optimized_execution(False):
        yield
