"""Small model repositories for the reliability tests, built from tests/service/fake_models:
a slow model with a known capacity, a faulty one, and a model whose versions answer
differently so that a response from the wrong version is visible."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from models.repository.config import read_config, write_config
from models.repository.formats import TorchScriptFormat, sha256_of
from tests.service.fake_models import SIZE, Faulty, Slow, write_model

#: The label each version of the "flip" model always gives (the labels are dark, light).
FLIP_LABEL = {1: "dark", 2: "light"}


class Constant(nn.Module):
    """Always the same class, whatever the image: a version's fingerprint in its answers."""

    def __init__(self, label_index: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.tensor([1.0, 0.0] if label_index == 0 else [0.0, 1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))

    @torch.jit.export
    def forward_with_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.fc(x.mean(dim=(2, 3))), {"energy": x.abs().mean(dim=1)}


def slow_repository(repo: Path, rounds: int) -> Path:
    write_model(repo, "slow", Slow(rounds), max_batch_size=4)
    return repo


def faults_repository(repo: Path, slow_rounds: int) -> Path:
    write_model(repo, "faulty", Faulty(), max_batch_size=8, delay_ms=5.0)
    write_model(repo, "flip", Constant(0), max_batch_size=8, delay_ms=5.0)
    write_model(repo, "slow", Slow(slow_rounds), max_batch_size=4)
    return repo


def add_flip_version(repo: Path, version: int) -> None:
    """Write version ``version`` of "flip" (answering ``FLIP_LABEL[version]``) beside the others."""
    path = repo / "flip" / str(version) / "model.pt"
    model = Constant(["dark", "light"].index(FLIP_LABEL[version])).eval()
    TorchScriptFormat().save(model, torch.zeros(1, 3, SIZE, SIZE), path)
    config = read_config(repo / "flip" / "config.json")
    info = config.versions[1].model_copy(
        update={"sha256": sha256_of(path), "exported_at": datetime.now(timezone.utc)}
    )
    write_config(config.with_version(version, info), repo / "flip" / "config.json")
