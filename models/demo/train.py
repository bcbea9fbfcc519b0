"""Training and evaluation of the demo models on generated shapes, on the CPU in minutes.

Pre-processing here is exactly the service's: uint8 RGB -> float in [0, 1] -> (x - mean) / std,
at the model's input size (images are drawn at that size, or resized to it as the service
resizes: ``models.demo.uploads``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0


def to_input(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, normalised."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


def flip_or_transpose(x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A random one of the eight flips and quarter turns of a batch of images (and of its masks,
    when ``y`` holds masks): a shape's class does not change under any of them."""
    moves: tuple[Callable[[Tensor], Tensor], ...] = (
        lambda t: t.flip(-1),
        lambda t: t.flip(-2),
        lambda t: t.transpose(-2, -1),
    )
    for move in moves:
        if torch.rand((), generator=generator) < 0.5:
            x = move(x)
            y = move(y) if y.dim() > 1 else y
    return x, y


def fit(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    settings: TrainSettings,
    log: Log,
    what: str,
) -> None:
    """AdamW with a one-cycle schedule, and the batch flipped and transposed at random."""
    generator = torch.Generator().manual_seed(settings.seed)
    steps_per_epoch = max(len(inputs) // settings.batch_size, 1)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, settings.learning_rate, total_steps=settings.epochs * steps_per_epoch
    )
    model.train()
    for epoch in range(settings.epochs):
        started, total = time.perf_counter(), 0.0
        order = torch.randperm(len(inputs), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * settings.batch_size : (step + 1) * settings.batch_size]
            x, y = inputs[index], targets[index]
            x, y = flip_or_transpose(x, y, generator)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        seconds = time.perf_counter() - started
        log(
            f"{what}: epoch {epoch + 1}/{settings.epochs} loss {total / steps_per_epoch:.4f} "
            f"({seconds:.1f} s)"
        )
    model.eval()


@torch.inference_mode()
def predict(model: nn.Module, inputs: Tensor, batch_size: int = 256) -> Tensor:
    """Arg-max predictions: (N,) class indices or (N, H, W) masks."""
    model.eval()
    return torch.cat(
        [model(inputs[i : i + batch_size]).argmax(dim=1) for i in range(0, len(inputs), batch_size)]
    )


def accuracy(predicted: Tensor, labels: Tensor) -> float:
    return float((predicted == labels).float().mean())


def iou_counts(predicted: Tensor, truth: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Per-class (intersection, union) pixel counts, to be summed over chunks of a set."""
    pairs = truth.reshape(-1) * num_classes + predicted.reshape(-1)
    confusion = torch.bincount(pairs, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes)  # (truth, predicted)
    intersection = confusion.diagonal()
    return intersection, confusion.sum(0) + confusion.sum(1) - intersection


def mean_over_present(intersection: Tensor, union: Tensor) -> float:
    """Mean IoU over the classes that occur in the truth or the prediction."""
    present = union > 0
    return float((intersection[present].double() / union[present].double()).mean())


def mean_iou(predicted: Tensor, masks: Tensor, num_classes: int) -> float:
    """Mean over classes of intersection / union accumulated over the whole set."""
    return mean_over_present(*iou_counts(predicted, masks, num_classes))
