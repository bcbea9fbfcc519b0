"""Writing a version into a repository: the model file, then its entry in config.json.

Two steps because export verifies the file between them (and removes it if that fails); a
version only counts once ``record_version`` has written its sha256 into config.json.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn

from models.repository.config import ModelConfig, VersionInfo, write_config
from models.repository.formats import TorchScriptFormat, sha256_of
from models.repository.layout import config_path, model_file, version_dir


def write_version(repo: Path, name: str, version: int, model: nn.Module, example: Tensor) -> Path:
    """Save ``model`` (scripted, frozen) as version ``version`` of ``name``; returns its file.
    Refuses a version folder that exists already (versions are never overwritten) and leaves
    nothing behind if saving fails."""
    folder = version_dir(repo, name, version)
    if folder.exists():
        raise FileExistsError(f"{folder} exists already; choose another version")
    model_format = TorchScriptFormat()
    path = model_file(repo, name, version, model_format.filename)
    try:
        model_format.save(model.eval(), example, path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path


def record_version(
    repo: Path,
    config: ModelConfig,
    version: int,
    *,
    architecture: str,
    metrics: dict[str, float] | None = None,
) -> ModelConfig:
    """Add version ``version`` (its file as it is on disk now) to ``config`` and write
    config.json; returns the config written."""
    model_format = TorchScriptFormat()
    info = VersionInfo(
        format=model_format.name,
        file=model_format.filename,
        architecture=architecture,
        torch_version=torch.__version__,
        sha256=sha256_of(model_file(repo, config.name, version, model_format.filename)),
        exported_at=datetime.now(timezone.utc),
        metrics=metrics or {},
    )
    written = config.with_version(version, info)
    write_config(written, config_path(repo, config.name))
    return written
