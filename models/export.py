"""``attnserve export``: write an architecture into a model repository, verified.

Writes the version through :mod:`models.repository.versions` (``REPO/NAME/VERSION/model.pt``,
then its entry in ``REPO/NAME/config.json``), reloading the file the way the service will in
between: it refuses (removing what it wrote) unless both exported methods reproduce the eager
model on random input.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from models.attention.base import name_attention_maps
from models.repository.config import BatchingSpec, InputSpec, ModelConfig, read_config
from models.repository.formats import TorchScriptFormat
from models.repository.layout import config_path, next_version
from models.repository.versions import record_version, write_version
from models.zoo import build_model, get_architecture
from models.zoo.specs import ArchitectureSpec

VERIFY_BATCH = 2
VERIFY_ATOL = 1e-3
VERIFY_RTOL = 1e-3


class ExportError(RuntimeError):
    """The export was refused; the message says why."""


@dataclass(frozen=True)
class ExportRequest:
    architecture: str
    repo: Path
    name: str | None = None  # model name in the repository; default: the architecture's
    version: int | None = None  # default: the next free version
    input_size: tuple[int, int] | None = None  # default: the architecture's
    labels: list[str] | None = None  # default: class_0 .. class_{n-1}
    num_classes: int = 10
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    batching: BatchingSpec = field(default_factory=BatchingSpec)
    metrics: dict[str, float] | None = None
    description: str | None = None


def load_weights(model: nn.Module, checkpoint: Path) -> None:
    """Load a state dict, or a dict holding one under ``state_dict``; strict on keys."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ExportError(f"weights {checkpoint} do not fit the architecture: {error}") from None


def check_round_trip(eager: nn.Module, path: Path, example: Tensor) -> dict[str, list[int]]:
    """Reload ``path`` as the service does; both methods must match the eager model.

    Returns each attention map's shape without the batch dimension, by name: the service's
    metadata declares it (a served model's input size is fixed, so no other dimension varies)."""
    loaded = TorchScriptFormat().load(path, torch.device("cpu"))
    with torch.inference_mode():
        expected, expected_maps = eager.forward_with_maps(example)
        got_plain = loaded(example)
        got, got_maps = loaded.forward_with_maps(example)
    problems = []
    if sorted(got_maps) != sorted(expected_maps):
        problems.append(f"map names differ: {sorted(got_maps)} vs {sorted(expected_maps)}")
    pairs = [("forward", got_plain, expected), ("forward_with_maps", got, expected)]
    pairs += [(f"map {k}", got_maps[k], v) for k, v in expected_maps.items() if k in got_maps]
    for what, actual, wanted in pairs:
        if actual.shape != wanted.shape or not torch.allclose(
            actual, wanted, atol=VERIFY_ATOL, rtol=VERIFY_RTOL
        ):
            diff = (actual - wanted).abs().max().item() if actual.shape == wanted.shape else "-"
            problems.append(
                f"{what}: shapes {tuple(actual.shape)}/{tuple(wanted.shape)}, max abs diff {diff}"
            )
    if problems:
        raise ExportError(
            "exported model does not reproduce the eager model: " + "; ".join(problems)
        )
    return {name: list(expected_maps[name].shape[1:]) for name in sorted(expected_maps)}


def default_config(spec: ArchitectureSpec, request: ExportRequest, name: str) -> ModelConfig:
    height, width = request.input_size or spec.input_size
    labels = request.labels or [f"class_{i}" for i in range(request.num_classes)]
    input_spec = InputSpec(height=height, width=width)
    if request.mean is not None and request.std is not None:
        input_spec = InputSpec(height=height, width=width, mean=request.mean, std=request.std)
    return ModelConfig(
        name=name,
        task=spec.task,
        input=input_spec,
        labels=labels,
        batching=request.batching,
        description=request.description or spec.description,
    )


def export_model(request: ExportRequest, model: nn.Module | None = None) -> ModelConfig:
    """Export ``model`` (default: a fresh build of the architecture) and return its config.

    A trained model can be handed in directly (the demo does); otherwise the architecture is
    built for the labels' class count, and weights may be loaded into it by the caller."""
    spec = get_architecture(request.architecture)
    name = request.name or spec.name
    config = default_config(spec, request, name)
    if model is None:
        model = build_model(spec, config.num_classes, (config.input.height, config.input.width))
    model = model.eval()
    name_attention_maps(model)
    version = request.version or next_version(request.repo, name)
    example = torch.rand(VERIFY_BATCH, 3, config.input.height, config.input.width)
    try:
        path = write_version(request.repo, name, version, model, example)
    except FileExistsError as error:
        raise ExportError(f"{error} (--version)") from None
    try:
        shapes = check_round_trip(model, path, example)
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise
    config = config.model_copy(update={"attention_maps": list(shapes), "map_shapes": shapes})
    path_of_config = config_path(request.repo, name)
    if path_of_config.is_file():
        config = merge_with_existing(read_config(path_of_config), config, path.parent)
    return record_version(
        request.repo, config, version, architecture=spec.name, metrics=request.metrics
    )


def merge_with_existing(previous: ModelConfig, new: ModelConfig, folder: Path) -> ModelConfig:
    """A new version joins a model only if it takes the same input and gives the same outputs:
    versions share one config.json, so they must be interchangeable for a client. A config
    written before map shapes were recorded takes the new version's."""
    fields = ["task", "input", "labels", "attention_maps"]
    fields += ["map_shapes"] if previous.map_shapes else []
    differing = [f for f in fields if getattr(previous, f) != getattr(new, f)]
    if differing:
        shutil.rmtree(folder, ignore_errors=True)
        raise ExportError(
            f"model {new.name!r} exists with a different {', '.join(differing)}; "
            "export under another --name"
        )
    return previous.model_copy(update={"map_shapes": new.map_shapes})
