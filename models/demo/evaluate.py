"""Held-out evaluation of the demo models on images as users upload them: drawn from a seed the
model never trained on, at several sides, each sent as PNG and as JPEG at two qualities, and
pre-processed as the service does (``models.demo.uploads.decode``).

Every cell of the table (format x side) holds the same images per side across formats, so a
column shows what compression alone costs. A segmentation mask is scored at the uploaded side,
as a client sees it: logits upsampled bilinearly, as ``service.encoding.encode_mask`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from models.demo.shapes import generate_batch
from models.demo.train import iou_counts, mean_over_present
from models.demo.uploads import decode, encode

SIDES = (48, 64, 128, 256)
FORMATS: Tuple[Tuple[str, Optional[int]], ...] = (("png", None), ("jpeg90", 90), ("jpeg75", 75))
_MASK_CHUNK = 16


@dataclass(frozen=True)
class Task:
    """What is evaluated: the model's input side and normalisation, and the data's kind."""

    metric: str  # "accuracy" or "miou"
    num_classes: int
    max_shapes: int
    input_side: int
    to_input: Callable[[np.ndarray], Tensor]


@torch.inference_mode()
def score(model: nn.Module, task: Task, inputs: np.ndarray, truth: np.ndarray) -> float:
    """Accuracy of labels, or mIoU of masks at ``truth``'s side, for uploaded ``inputs``."""
    logits = torch.cat([model(task.to_input(inputs[i : i + 256]))
                        for i in range(0, len(inputs), 256)])  # fmt: skip
    if task.metric == "accuracy":
        return float((logits.argmax(1).numpy() == truth).mean())
    total = torch.zeros(2, task.num_classes, dtype=torch.long)
    for i in range(0, len(inputs), _MASK_CHUNK):
        chunk = F.interpolate(logits[i : i + _MASK_CHUNK], size=truth.shape[1:], mode="bilinear",
                              align_corners=False)  # fmt: skip
        masks = torch.from_numpy(truth[i : i + _MASK_CHUNK].astype(np.int64))
        total += torch.stack(iou_counts(chunk.argmax(1), masks, task.num_classes))
    return mean_over_present(total[0], total[1])


def uploaded(images: np.ndarray, quality: Optional[int], side: int) -> np.ndarray:
    """Each image encoded (PNG, or JPEG at ``quality``) and decoded as the service would."""
    return np.stack([decode(encode(Image.fromarray(image), quality), side) for image in images])


def evaluate_uploads(
    model: nn.Module, task: Task, seed: int, count: int, sides: Sequence[int] = SIDES
) -> dict[str, float]:
    """Metrics by format and side (``metric.FORMAT.SIDEpx``), their mean (``metric``) and the
    worst cell (``metric.worst``); ``count`` images per side, drawn from ``seed + side``."""
    metrics: dict[str, float] = {}
    for side in sides:
        images, labels, masks = generate_batch(seed + side, count, side, task.max_shapes)
        truth = labels if task.metric == "accuracy" else masks
        for name, quality in FORMATS:
            inputs = uploaded(images, quality, task.input_side)
            metrics[f"{task.metric}.{name}.{side}px"] = score(model, task, inputs, truth)
    cells = list(metrics.values())
    return {task.metric: float(np.mean(cells)), f"{task.metric}.worst": min(cells), **metrics}


def table(metrics: dict[str, float], metric: str) -> list[str]:
    """``evaluate_uploads``' cells as text lines: one row per format, one column per side."""
    sides = sorted({int(k.split(".")[2][:-2]) for k in metrics if k.count(".") == 2})
    lines = ["format  " + "".join(f"{side:>7d}px" for side in sides)]
    for name, _ in FORMATS:
        row = [metrics.get(f"{metric}.{name}.{side}px") for side in sides]
        if all(value is not None for value in row):
            lines.append(f"{name:<8}" + "".join(f"{value:>9.4f}" for value in row))
    return lines
