"""The tests' one set of fake models, written through the repository API
(:mod:`models.repository.versions`) exactly as export writes a version: one that fails on marked
inputs, one that is slow on purpose, one whose versions answer differently (so a response from
the wrong version is visible), and broken entries."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import torch
from torch import Tensor, nn

from models.repository.config import BatchingSpec, InputSpec, ModelConfig, read_config
from models.repository.layout import config_path
from models.repository.versions import record_version, write_version

SIZE = 8
#: After normalisation a pure white pixel is (1 - 0.5) / 0.25 = 2: the fault marker.
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
POISON_THRESHOLD = 1.9


class Faulty(nn.Module):
    """Two classes from the mean colour; raises for an all-white image (and only for it)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.threshold = POISON_THRESHOLD

    def _check(self, x: Tensor) -> None:
        if bool((x.mean(dim=(1, 2, 3)) > self.threshold).any()):
            raise ValueError("poisoned input: an all-white image")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.fc(x.mean(dim=(2, 3)))

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        self._check(x)
        return self.fc(x.mean(dim=(2, 3))), {"energy": x.abs().mean(dim=1)}


class Slow(nn.Module):
    """A classifier that spends a fixed amount of compute per batch: ``rounds`` dense
    ``width`` x ``width`` matmuls (the same work whatever the batch size)."""

    def __init__(self, rounds: int, width: int = 1024) -> None:
        super().__init__()
        self.rounds = rounds
        generator = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.randn(width, width, generator=generator) / width**0.5)
        self.fc = nn.Linear(3, 2)

    def _burn(self, x: Tensor) -> Tensor:
        # depends on the input, and its trip count on the input's shape, so that freezing can
        # neither fold the loop into a constant nor unroll it
        state = torch.tanh(self.weight * (1.0 + x.mean() * 1e-9))
        for _ in range(self.rounds * x.shape[1] // 3):
            state = torch.tanh(state @ self.weight)
        return self.fc(x.mean(dim=(2, 3))) + state.mean() * 1e-9

    def forward(self, x: Tensor) -> Tensor:
        return self._burn(x)

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        return self._burn(x), {"energy": x.abs().mean(dim=1)}


class Constant(nn.Module):
    """Always the same class, whatever the image: a version's fingerprint in its answers."""

    def __init__(self, label_index: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.tensor([1.0, 0.0] if label_index == 0 else [0.0, 1.0]))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.mean(dim=(2, 3)))

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        return self.fc(x.mean(dim=(2, 3))), {"energy": x.abs().mean(dim=1)}


#: The label each version of the "flip" model always gives (the labels are dark, light).
FLIP_LABEL = {1: "dark", 2: "light"}
LABELS = ["dark", "light"]


def write_model(
    repo: Path,
    name: str,
    model: nn.Module,
    max_batch_size: int = 8,
    delay_ms: float = 2.0,
    priority_levels: int = 0,
    instances: int | None = 1,
) -> Path:
    """Version 1 of ``name``: the model file and a config.json recording it (with priority
    levels, its requests default to the lowest). One instance unless told: the tests of
    deadlines, full queues and drains need the one worker a slow batch keeps busy; None leaves
    the count to the device's default."""
    path = write_version(repo, name, 1, model, torch.zeros(1, 3, SIZE, SIZE))
    config = ModelConfig(
        name=name,
        task="classification",
        input=InputSpec(height=SIZE, width=SIZE, mean=MEAN, std=STD),
        labels=LABELS,
        attention_maps=["energy"],
        batching=BatchingSpec(
            max_batch_size=max_batch_size,
            max_queue_delay_ms=delay_ms,
            priority_levels=priority_levels,
            default_priority_level=priority_levels,
        ),
        instances=instances,
    )
    record_version(repo, config, 1, architecture=type(model).__name__)
    return path


def add_flip_version(repo: Path, version: int) -> Path:
    """Write version ``version`` of "flip" (answering ``FLIP_LABEL[version]``) beside the
    others; returns its model file."""
    model = Constant(LABELS.index(FLIP_LABEL.get(version, "dark")))
    path = write_version(repo, "flip", version, model, torch.zeros(1, 3, SIZE, SIZE))
    config = read_config(config_path(repo, "flip"))
    record_version(repo, config, version, architecture="Constant")
    return path


def slow_repository(repo: Path, rounds: int) -> Path:
    write_model(repo, "slow", Slow(rounds), max_batch_size=4)
    return repo


def priority_repository(repo: Path, rounds: int, max_batch_size: int) -> Path:
    """Two slow models that differ only in their queue: "ranked" has two priority levels
    (requests default to level 2), "unranked" one, which serves every request FIFO."""
    write_model(repo, "ranked", Slow(rounds), max_batch_size=max_batch_size, priority_levels=2)
    write_model(repo, "unranked", Slow(rounds), max_batch_size=max_batch_size)
    return repo


def faults_repository(repo: Path, slow_rounds: int) -> Path:
    write_model(repo, "faulty", Faulty(), max_batch_size=8, delay_ms=5.0)
    write_model(repo, "flip", Constant(0), max_batch_size=8, delay_ms=5.0)
    write_model(repo, "slow", Slow(slow_rounds), max_batch_size=4)
    return repo


def build_fault_repository(repo: Path, slow_rounds: int = 60) -> Path:
    """faulty, slow, a truncated model file, a config that is not JSON, a non-TorchScript file."""
    write_model(repo, "faulty", Faulty())
    write_model(repo, "slow", Slow(slow_rounds), max_batch_size=4)
    truncated = write_model(repo, "truncated", Faulty())
    truncated.write_bytes(truncated.read_bytes()[:200])
    not_torchscript = write_model(repo, "not-torchscript", Faulty())
    not_torchscript.write_bytes(b"this is not a TorchScript archive")
    # recorded again, with a matching sha256, so that loading itself (not the checksum) fails
    config = read_config(config_path(repo, "not-torchscript"))
    record_version(repo, config, 1, architecture="Faulty")
    (repo / "garbage").mkdir()
    (repo / "garbage" / "config.json").write_text("{not json")
    return repo
