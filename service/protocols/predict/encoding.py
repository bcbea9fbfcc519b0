"""Model outputs -> what a response carries: class scores, masks and maps as base64 PNG.

PNG because it is lossless (a class index or a scaled value survives the round trip), small
for masks, and opens in any browser; base64 because responses are JSON.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from service.engine.memory import MASK_TILE_ELEMENTS

# zlib level 3: masks and maps compress almost as well as at 6, in noticeably less time.
PNG_COMPRESS_LEVEL = 3
MAX_MASK_CLASSES = 256  # class indices 0..255 fit a uint8 (mode L) PNG


@dataclass(frozen=True)
class Heatmap:
    """A real-valued map as an 8-bit PNG; ``min + png / 255 * (max - min)`` recovers it."""

    png: str  # base64 of a mode-L PNG, shape (prod(shape[:-1]), shape[-1])
    shape: list[int]  # the map's own shape, before it was flattened to 2-D
    min: float
    max: float


def png_base64(array: np.ndarray) -> str:
    """A 2-D uint8 array -> base64 (ASCII) of a greyscale PNG of the same size."""
    if array.ndim != 2 or array.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 array, got {array.ndim}-D {array.dtype}")
    if array.size == 0:
        raise ValueError(f"cannot encode an empty array of shape {array.shape} as PNG")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(
        buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL
    )
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def encode_mask(logits: torch.Tensor, original_size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Segmentation logits (C, h, w) -> class-index mask at the original (height, width).

    Logits are upsampled bilinearly (as ``F.interpolate(..., align_corners=False)``) and the
    arg-max is taken at full resolution, so class boundaries are smooth at the original size
    instead of the blocky steps of upsampling an arg-max with nearest neighbour. It runs in
    tiles of columns and rows (:data:`MASK_TILE_ELEMENTS`), and each tile computes only its own
    resampling taps, so memory is the mask plus a constant for any size or aspect ratio.
    """
    if logits.dim() != 3:
        raise ValueError(f"expected logits of shape (C, h, w), got {tuple(logits.shape)}")
    classes, low_height, low_width = logits.shape
    if classes > MAX_MASK_CLASSES:
        raise ValueError(f"{classes} classes do not fit a uint8 mask (at most 256)")
    height, width = original_size
    if height < 1 or width < 1 or min(logits.shape) < 1:
        raise ValueError(f"cannot build a {original_size} mask from logits {tuple(logits.shape)}")
    # In numpy: torch ops this size would start an OpenMP thread team in this thread, and more
    # OpenMP threads than cores slow every forward pass (see engine.runtime.inference_thread).
    scores = logits.detach().to("cpu", torch.float32).numpy()
    mask = np.empty((height, width), dtype=np.uint8)
    tile_width = min(width, max(1, MASK_TILE_ELEMENTS // classes))
    tile_height = max(1, MASK_TILE_ELEMENTS // (classes * max(tile_width, low_width)))
    for top in range(0, height, tile_height):
        bottom = min(top + tile_height, height)
        row0, row1, row_weight = _linear_taps(low_height, height, top, bottom)
        # Height first, at the low width: (C, tile h, w), only the rows this tile needs.
        weight = row_weight.reshape(1, -1, 1)
        columns = _lerp(scores[:, row0], scores[:, row1], weight)
        for left in range(0, width, tile_width):
            right = min(left + tile_width, width)
            col0, col1, col_weight = _linear_taps(low_width, width, left, right)
            upsampled = _lerp(columns[:, :, col0], columns[:, :, col1], col_weight)
            mask[top:bottom, left:right] = upsampled.argmax(axis=0)  # (tile h, tile w)
    return mask, png_base64(mask)


def class_fractions(mask: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Share of the mask's pixels per label; every label is a key and the shares sum to 1.

    Counted in chunks: ``np.bincount`` widens its input to 8-byte integers, which for a whole
    large mask would be eight times the mask itself."""
    if mask.size == 0:
        raise ValueError("cannot compute class fractions of an empty mask")
    flat = mask.reshape(-1)
    counts = np.zeros(len(labels), dtype=np.int64)
    for start in range(0, flat.size, MASK_TILE_ELEMENTS):
        chunk = np.bincount(flat[start : start + MASK_TILE_ELEMENTS], minlength=len(labels))
        if len(chunk) > len(labels):
            raise ValueError(f"mask has class {len(chunk) - 1} but only {len(labels)} labels")
        counts += chunk
    return {label: float(count) / mask.size for label, count in zip(labels, counts, strict=True)}


def encode_heatmap(values: torch.Tensor) -> Heatmap:
    """Any map -> an 8-bit PNG scaled linearly from its min (0) to its max (255).

    One rule for every shape: the last dimension is the width and all leading dimensions are
    flattened into the height, so (H, W) stays as is, (T, H, W) stacks T maps vertically,
    a vector (C,) is a 1 x C strip and a scalar is 1 x 1. A constant map is all zeros with
    ``min == max``. Each value is recovered to within 1/255 of the range.
    """
    shape = list(values.shape)
    data = values.detach().to("cpu", torch.float64).reshape(-1, shape[-1] if shape else 1)
    if data.numel() == 0:
        raise ValueError(f"cannot encode an empty map of shape {shape}")
    if not torch.isfinite(data).all():
        raise ValueError("cannot encode a map with NaN or infinite values")
    low, high = float(data.min()), float(data.max())
    span = high - low
    if span > 0:
        scaled = ((data - low) * (255.0 / span)).round_().clamp_(0, 255)
    else:
        scaled = torch.zeros_like(data)
    return Heatmap(png=png_base64(scaled.to(torch.uint8).numpy()), shape=shape, min=low, max=high)


def topk(logits: torch.Tensor, k: int, labels: Sequence[str]) -> list[dict[str, int | str | float]]:
    """The k most likely classes as ``{index, label, score}``, best first.

    Scores are softmax probabilities; ``k`` is clamped to [1, number of classes] so a client
    asking for "top 10" of a 4-class model gets 4 answers, not an error. Ties keep index order.
    """
    scores = logits.detach().to("cpu", torch.float64).reshape(-1)
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} logits but {len(labels)} labels")
    probabilities = torch.softmax(scores, dim=0)
    order = torch.sort(probabilities, descending=True, stable=True).indices
    count = min(max(k, 1), len(labels))
    return [
        {"index": int(i), "label": labels[int(i)], "score": float(probabilities[i])}
        for i in order[:count]
    ]


def _linear_taps(
    in_size: int, out_size: int, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of 1-D linear resampling for outputs ``start:stop``, half-pixel
    centres (PyTorch's ``align_corners=False``): ``out[i] = lerp(in[i0], in[i1], w)``."""
    scale = in_size / out_size
    source = np.maximum((np.arange(start, stop, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    index0 = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    index1 = np.minimum(index0 + 1, in_size - 1)
    weight = np.clip((source - index0).astype(np.float32), 0, 1)
    return index0, index1, weight


def _lerp(start: np.ndarray, end: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return start + weight * (end - start)
