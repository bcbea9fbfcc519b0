"""``attnserve demo build``: export the demo classifier and segmenter into a model repository,
from the shipped weights (seconds) or, with ``--train``, after training them from scratch.

Everything is seeded: the same seed gives the same data. Training and held-out images come
from different seeds, so the reported accuracy / mIoU are on images the model never saw.
Training rewrites the shipped weights and their manifest (``models.demo.shipped``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.demo.shapes import SEGMENTATION_CLASSES, SHAPE_CLASSES, generate_batch
from models.demo.shipped import WEIGHTS_DIR, load_weights, save_weights
from models.demo.train import TrainSettings, accuracy, fit, mean_iou, predict, to_input
from models.export import ExportRequest, export_model
from models.repository.config import IMAGENET_MEAN, IMAGENET_STD, BatchingSpec, ModelConfig
from models.zoo import build_model, get_architecture

Log = Callable[[str], None]

CLASSIFIER_NAME = "shapes-classifier"
SEGMENTER_NAME = "shapes-segmenter"
HELD_OUT_SEED_OFFSET = 10_000
TRAIN_THREADS = 2
ACCURACY_TARGET = 0.95
MIOU_TARGET = 0.80


@dataclass(frozen=True)
class DemoModel:
    name: str
    architecture: str
    labels: tuple[str, ...]
    train_count: int
    held_out_count: int
    max_shapes: int
    settings: TrainSettings

    @property
    def classification(self) -> bool:
        return get_architecture(self.architecture).task == "classification"

    @property
    def size(self) -> int:
        return get_architecture(self.architecture).input_size[0]

    def build(self) -> nn.Module:
        return build_model(get_architecture(self.architecture), len(self.labels))


CLASSIFIER = DemoModel(
    name=CLASSIFIER_NAME,
    architecture="shapes_cbam_classifier",
    labels=SHAPE_CLASSES,
    train_count=6000,
    held_out_count=1000,
    max_shapes=1,
    settings=TrainSettings(epochs=10),
)
SEGMENTER = DemoModel(
    name=SEGMENTER_NAME,
    architecture="shapes_danet_segmenter",
    labels=SEGMENTATION_CLASSES,
    train_count=6000,
    held_out_count=500,
    max_shapes=3,
    settings=TrainSettings(epochs=10),
)
DEMO_MODELS = (CLASSIFIER, SEGMENTER)


def evaluate(demo: DemoModel, model: nn.Module, seed: int) -> dict[str, float]:
    """Held-out metrics on ``demo.held_out_count`` images drawn from ``seed``."""
    images, labels, masks = generate_batch(seed, demo.held_out_count, demo.size, demo.max_shapes)
    predicted = predict(model, to_input(images, IMAGENET_MEAN, IMAGENET_STD))
    if demo.classification:
        return {"accuracy": accuracy(predicted, torch.from_numpy(labels).long())}
    return {"miou": mean_iou(predicted, torch.from_numpy(masks).long(), len(demo.labels))}


def train_demo(demo: DemoModel, seed: int, log: Log) -> tuple[nn.Module, dict[str, float], float]:
    """Train ``demo`` from scratch with ``seed``; returns the model, its held-out metrics and
    the training time in seconds."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = demo.build()
    images, labels, masks = generate_batch(seed, demo.train_count, demo.size, demo.max_shapes)
    inputs = to_input(images, IMAGENET_MEAN, IMAGENET_STD)
    targets = torch.from_numpy(labels if demo.classification else masks).long()
    fit(model, inputs, targets, demo.settings, log, demo.name)
    seconds = time.perf_counter() - started
    return model, evaluate(demo, model, seed + HELD_OUT_SEED_OFFSET), seconds


def load_shipped(demo: DemoModel, weights: Path) -> tuple[nn.Module, dict[str, float], int]:
    """``demo`` with its shipped (sha256-verified) weights; returns the model, the held-out
    metrics recorded when it was trained, and its training seed."""
    state, entry = load_weights(weights, demo.name, demo.architecture)
    model = demo.build()
    model.load_state_dict(state)
    return model.eval(), entry.metrics, entry.seed


def describe(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())


def export_demo(
    demo: DemoModel, repo: Path, model: nn.Module, metrics: dict[str, float], seed: int
) -> ModelConfig:
    spec = get_architecture(demo.architecture)
    request = ExportRequest(
        architecture=demo.architecture,
        repo=repo,
        name=demo.name,
        labels=list(demo.labels),
        batching=BatchingSpec(max_batch_size=32, max_queue_delay_ms=2.0),
        metrics=metrics,
        description=f"{spec.description} Trained on generated shapes (seed {seed}); "
        f"held-out {describe(metrics)}.",
    )
    return export_model(request, model)


def build_demo_repository(
    repo: Path,
    seed: int = 0,
    log: Log = print,
    *,
    train_models: bool = False,
    weights: Path = WEIGHTS_DIR,
) -> list[ModelConfig]:
    """Export both demo models into ``repo``; returns their configs.

    By default from the shipped weights in ``weights``, every file checked against its sha256
    before anything is exported. With ``train_models`` both are first trained from scratch
    with ``seed``, and their weights and manifest in ``weights`` rewritten."""
    # At most TRAIN_THREADS; fewer when asked (OMP_NUM_THREADS): on a machine busy with other
    # work, one thread trains several times faster than two that keep waiting for each other.
    torch.set_num_threads(min(TRAIN_THREADS, torch.get_num_threads()))
    started = time.perf_counter()
    trained = []
    for demo in DEMO_MODELS:
        if train_models:
            model, metrics, seconds = train_demo(demo, seed, log)
            save_weights(weights, demo.name, model, architecture=demo.architecture, seed=seed,
                         train_seconds=seconds, metrics=metrics)  # fmt: skip
            log(f"{demo.name}: trained in {seconds:.0f} s, weights written to {weights}")
            trained.append((demo, model, metrics, seed))
        else:
            trained.append((demo, *load_shipped(demo, weights)))
            log(f"{demo.name}: shipped weights from {weights} (sha256 verified)")
    configs = []
    for demo, model, metrics, model_seed in trained:
        log(f"{demo.name}: held-out {describe(metrics)}")
        configs.append(export_demo(demo, Path(repo), model, metrics, model_seed))
    log(f"demo repository written to {repo} in {time.perf_counter() - started:.0f} s")
    return configs
