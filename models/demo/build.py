"""``attnserve demo build``: train the demo classifier and segmenter on generated shapes,
evaluate them on held-out images, and export both into a model repository.

Everything is seeded: the same seed gives the same data. Training and held-out images come
from different seeds, so the reported accuracy / mIoU are on images the model never saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from models.demo.shapes import SEGMENTATION_CLASSES, SHAPE_CLASSES, generate_batch
from models.demo.train import TrainSettings, accuracy, fit, mean_iou, predict, to_input
from models.export import ExportRequest, export_model
from models.repository.config import IMAGENET_MEAN, IMAGENET_STD, BatchingSpec, ModelConfig
from models.zoo import build_model, get_architecture

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


def train_and_export(
    demo: DemoModel, repo: Path, seed: int, log: Callable[[str], None]
) -> ModelConfig:
    spec = get_architecture(demo.architecture)
    size = spec.input_size[0]
    torch.manual_seed(seed)
    model = build_model(spec, len(demo.labels))
    images, labels, masks = generate_batch(seed, demo.train_count, size, demo.max_shapes)
    inputs = to_input(images, IMAGENET_MEAN, IMAGENET_STD)
    classification = spec.task == "classification"
    targets = torch.from_numpy(labels if classification else masks).long()
    fit(model, inputs, targets, demo.settings, log, demo.name)

    held_out = generate_batch(
        seed + HELD_OUT_SEED_OFFSET, demo.held_out_count, size, demo.max_shapes
    )
    predicted = predict(model, to_input(held_out[0], IMAGENET_MEAN, IMAGENET_STD))
    if classification:
        metrics = {"accuracy": accuracy(predicted, torch.from_numpy(held_out[1]).long())}
    else:
        truth = torch.from_numpy(held_out[2]).long()
        metrics = {"miou": mean_iou(predicted, truth, len(demo.labels))}
    log(f"{demo.name}: held-out " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    request = ExportRequest(
        architecture=demo.architecture,
        repo=repo,
        name=demo.name,
        labels=list(demo.labels),
        batching=BatchingSpec(max_batch_size=32, max_queue_delay_ms=2.0),
        metrics=metrics,
        description=f"{spec.description} Trained on generated shapes (seed {seed}); "
        f"held-out {', '.join(f'{k} {v:.4f}' for k, v in metrics.items())}.",
    )
    return export_model(request, model)


def build_demo_repository(
    repo: Path, seed: int = 0, log: Callable[[str], None] = print
) -> list[ModelConfig]:
    """Train, evaluate and export both demo models; returns their configs."""
    torch.set_num_threads(TRAIN_THREADS)
    started = time.perf_counter()
    configs = [train_and_export(demo, Path(repo), seed, log) for demo in (CLASSIFIER, SEGMENTER)]
    log(f"demo repository written to {repo} in {time.perf_counter() - started:.0f} s")
    return configs
