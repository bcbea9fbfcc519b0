"""write_version and record_version: the one way a version gets into a repository."""

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from models.repository.config import InputSpec, ModelConfig, read_config
from models.repository.formats import sha256_of
from models.repository.layout import config_path, model_file
from models.repository.versions import record_version, write_version


class Mean(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return x.mean(dim=(2, 3)), {}


class WithoutMaps(nn.Module):
    """Scripts, but freezing fails: it has no ``forward_with_maps`` to preserve."""

    def forward(self, x: Tensor) -> Tensor:
        return x


EXAMPLE = torch.zeros(1, 3, 4, 4)


def config() -> ModelConfig:
    return ModelConfig(
        name="mean", task="classification", input=InputSpec(height=4, width=4), labels=list("abc")
    )


def test_a_written_and_recorded_version_is_where_the_layout_says(tmp_path: Path) -> None:
    path = write_version(tmp_path, "mean", 3, Mean(), EXAMPLE)
    assert path == model_file(tmp_path, "mean", 3, "model.pt") == tmp_path / "mean/3/model.pt"
    written = record_version(tmp_path, config(), 3, architecture="Mean", metrics={"acc": 1.0})
    assert read_config(config_path(tmp_path, "mean")) == written
    assert written.versions[3].sha256 == sha256_of(path)
    assert written.versions[3].metrics == {"acc": 1.0}


def test_an_existing_version_is_never_overwritten(tmp_path: Path) -> None:
    path = write_version(tmp_path, "mean", 1, Mean(), EXAMPLE)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="exists already"):
        write_version(tmp_path, "mean", 1, Mean(), EXAMPLE)
    assert path.read_bytes() == before


def test_a_failed_save_leaves_no_version_folder(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="forward_with_maps"):
        write_version(tmp_path, "broken", 1, WithoutMaps(), EXAMPLE)
    assert not (tmp_path / "broken" / "1").exists()
