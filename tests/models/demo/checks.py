"""What the demo tests read back: printed metrics, exported models, the manifest."""

import re
from pathlib import Path

import torch

from models.repository.config import ModelConfig, read_config


def reported(output: str, metric: str, model: str) -> float:
    """The held-out ``metric`` that ``attnserve demo build`` printed for ``model``."""
    match = re.search(rf"{model}: held-out .*\b{metric} ([0-9.]+)", output)
    assert match, output
    return float(match.group(1))


def reload(repo: Path, name: str) -> tuple[torch.jit.ScriptModule, ModelConfig]:
    """The newest exported version of ``name``, loaded with plain ``torch.jit.load``."""
    config = read_config(repo / name / "config.json")
    version = config.latest_version
    model = torch.jit.load(str(repo / name / str(version) / config.versions[version].file))
    return model.eval(), config
