"""The model configuration schema: written by ``attnserve export``, read by the service.

It is the one place that says what a served model expects (input size, colour order,
normalisation), what it returns (task, labels, attention maps) and how it is batched.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CONFIG_FILENAME = "config.json"
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Task = Literal["classification", "segmentation"]
ColorOrder = Literal["RGB", "BGR"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_PRIORITY_LEVELS = 64  # one FIFO each; more than any scheduling policy needs


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_model_name(name: str) -> str:
    """A model name is one path segment of safe characters: it can never leave the repository."""
    if not MODEL_NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ValueError(
            f"invalid model name {name!r}: use 1-64 letters, digits, '_', '-', '.', "
            "starting with a letter or digit, and no '..'"
        )
    return name


class InputSpec(StrictModel):
    """How an image becomes the model's input tensor (B, 3, height, width), float32."""

    height: int = Field(gt=0, le=4096)
    width: int = Field(gt=0, le=4096)
    color_order: ColorOrder = "RGB"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @field_validator("std")
    @classmethod
    def _positive_std(cls, std: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(std) <= 0:
            raise ValueError("std values must be positive")
        return std


class BatchingSpec(StrictModel):
    """Dynamic-batching defaults; the service's settings may override them."""

    max_batch_size: int = Field(default=16, ge=1, le=1024)
    max_queue_delay_ms: float = Field(default=5.0, ge=0, le=10_000)
    # p99 goal for queue wait + compute: the batch size is then capped to what meets it,
    # learnt from the model's own forward passes (service/engine/sizing.py); unset: fixed cap
    target_latency_ms: float | None = Field(default=None, gt=0, le=60_000)
    priority_levels: int = Field(
        default=0,
        ge=0,
        le=MAX_PRIORITY_LEVELS,
        description="Triton's dynamic_batcher priorities: levels 1..priority_levels, level 1 "
        "the highest (served first), FIFO within a level; 0 or 1: one level, no priorities",
    )
    default_priority_level: int = Field(
        default=0,
        ge=0,
        le=MAX_PRIORITY_LEVELS,
        description="the level of a request that sends no priority (or priority 0); required "
        "(1..priority_levels) with priority levels, else 0",
    )

    @model_validator(mode="after")
    def _default_level_exists(self) -> BatchingSpec:
        if self.priority_levels > 1 and not 1 <= self.default_priority_level <= self.levels:
            raise ValueError(
                f"default_priority_level must be 1..{self.priority_levels} (the model's "
                f"priority_levels; 1 is the highest), got {self.default_priority_level}"
            )
        if self.priority_levels <= 1 and self.default_priority_level > 1:
            raise ValueError(
                f"default_priority_level {self.default_priority_level} needs priority_levels >= "
                f"{self.default_priority_level}; this model has {self.priority_levels}"
            )
        return self

    @property
    def levels(self) -> int:
        """How many priority levels the queue keeps: at least one."""
        return max(self.priority_levels, 1)

    @property
    def default_level(self) -> int:
        """The level of a request that names none (1..levels)."""
        return self.default_priority_level or 1


class VersionInfo(StrictModel):
    """Export metadata of one version: what produced the file and how to check it."""

    format: str = "torchscript"
    file: str = "model.pt"
    architecture: str
    torch_version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    exported_at: datetime
    metrics: dict[str, float] = Field(default_factory=dict)


class ModelConfig(StrictModel):
    name: str
    task: Task
    input: InputSpec
    labels: list[str] = Field(min_length=1)
    attention_maps: list[str] = Field(default_factory=list)
    map_shapes: dict[str, list[int]] = Field(
        default_factory=dict,
        description="each attention map's shape without the batch dimension, -1 where it varies "
        "(recorded by export; configs written before it have none)",
    )
    batching: BatchingSpec = BatchingSpec()
    # Triton's instance_group count: forward passes of this model that may run at once, each
    # on its own thread, sharing the torch threads (service/engine/cores.py); unset, the
    # device's default (service/engine/runtime.py: default_instances)
    instances: int | None = Field(default=None, ge=1, le=64)
    versions: dict[int, VersionInfo] = Field(default_factory=dict)
    description: str = ""

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        return check_model_name(name)

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")
        if any(version < 1 for version in self.versions):
            raise ValueError("versions are positive integers")
        strays = sorted(set(self.map_shapes) - set(self.attention_maps))
        if strays:
            raise ValueError(f"map_shapes names maps the model does not have: {strays}")
        if any(d < -1 or d == 0 for shape in self.map_shapes.values() for d in shape):
            raise ValueError("map_shapes dimensions are positive, or -1 where they vary")
        return self

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def latest_version(self) -> int | None:
        return max(self.versions) if self.versions else None

    def with_version(self, version: int, info: VersionInfo) -> ModelConfig:
        return self.model_copy(update={"versions": {**self.versions, version: info}})


def read_config(path: Path) -> ModelConfig:
    """Read and validate a config.json; raises ``pydantic.ValidationError`` or ``OSError``."""
    return ModelConfig.model_validate_json(path.read_text(encoding="utf-8"))


def write_config(config: ModelConfig, path: Path) -> None:
    """Write atomically, so a reader never sees half a file."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
