"""Seeded procedural images of coloured shapes on textured, noisy backgrounds, with exact masks.

The demo classifier and segmenter are trained on CPU in minutes, so they need an endless, free,
reproducible data source that is learnable but not trivial: the background carries a colour
gradient, a low-frequency pattern (stripes or a checker at a random angle) and per-pixel noise, so
a model cannot just threshold a flat colour; shapes get a random colour that contrasts with the
background under them, a random size, position and rotation. Every random draw comes from one
``numpy.random.Generator``, so a seed fully determines the data (bit-identical on rerun).

Each shape is rasterised first as a boolean mask on the pixel centres (signed distance for the
circle, even-odd point-in-polygon for the rest), then the image is painted exactly where that mask
is set; the segmentation mask is therefore exactly what was drawn, pixel for pixel.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np
from PIL import Image

from models.demo import styles
from models.demo.raster import rasterise

SHAPE_CLASSES: Tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
"""Classifier labels: ``Sample.label`` indexes this tuple."""

SEGMENTATION_CLASSES: Tuple[str, ...] = ("background", *SHAPE_CLASSES)
"""Segmenter labels: mask value 0 is background, value k is ``SHAPE_CLASSES[k - 1]``."""

MIN_SIZE = 16
"""Smallest image side: below it a 5-point star or a cross is no longer recognisable."""

MAIN_EXTENT = (0.30, 0.70)
"""Main shape's extent (circumscribed diameter) as a fraction of the image side."""

EXTRA_EXTENT = (0.20, 0.40)
"""Extent of the additional (smaller) shapes of multi-shape samples, so several fit side by side."""

MIN_CONTRAST = 90.0
"""Minimum RGB Euclidean distance between a shape's colour and the mean background under it."""

NOISE = (4.0, 14.0)
"""Range of the per-pixel noise's standard deviation, in 8-bit levels."""

VARIED_NOISE = (0.0, 18.0)
VARIED_BACKGROUND_SHARE = 0.5
"""With ``varied``: the noise range, and the share of backgrounds from ``models.demo.styles``."""

_PLACEMENT_TRIES = 12
_NOISE_BANK_LEN = 1 << 20
_COLOUR_TRIES = 16


@dataclass(frozen=True, eq=False)
class Sample:
    """One generated example. ``eq=False`` because element-wise array equality has no truth value;
    compare fields with ``np.array_equal`` instead.

    ``image`` is (H, W, 3) uint8 RGB, ``label`` the index into ``SHAPE_CLASSES`` of the main
    (largest) shape, ``mask`` the (H, W) uint8 segmentation map over ``SEGMENTATION_CLASSES``.
    """

    image: np.ndarray
    label: int
    mask: np.ndarray


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x, y), each (size, size) float32, cached because every sample of a
    given size reuses them; read-only so a caller cannot corrupt the cache."""
    centres = np.arange(size, dtype=np.float32) + 0.5
    xx, yy = np.meshgrid(centres, centres)
    xx.setflags(write=False)
    yy.setflags(write=False)
    return xx, yy


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed bank of standard-normal values (4 MiB, from a constant seed) that samples slice at
    a random offset: drawing fresh normals costs more than everything else in a 64 x 64 sample
    together, while a random slice of a million values is just as unpredictable to a model."""
    bank = np.random.default_rng(0x5EED).standard_normal(_NOISE_BANK_LEN, dtype=np.float32)
    bank.setflags(write=False)
    return bank


def _noise(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` standard-normal float32 values: a bank slice, or fresh ones for huge images."""
    if 4 * count > _NOISE_BANK_LEN:
        return rng.standard_normal(count, dtype=np.float32)
    start = int(rng.integers(0, _NOISE_BANK_LEN - count + 1))
    return _noise_bank()[start : start + count]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Noise-free textured background (H * W, 3) float32: a gradient between two random colours
    along a random direction, plus stripes or a checker at a random angle, frequency and tint.

    The three per-pixel terms (constant, gradient position, pattern value) are stacked as features
    and mixed into RGB with one small matrix product, which is several times faster than adding
    three broadcast (H, W, 3) arrays."""
    xx, yy = _grid(size)
    features = np.empty((size * size, 3), dtype=np.float32)
    features[:, 0] = 1.0
    angle = rng.uniform(0.0, 2.0 * math.pi)
    along = features[:, 1].reshape(size, size)
    np.multiply(xx, math.cos(angle), out=along)
    along += yy * math.sin(angle)
    along -= along.min()
    along *= 1.0 / max(float(along.max()), 1e-6)

    angle = rng.uniform(0.0, math.pi)
    scale = 2.0 * math.pi * rng.uniform(1.5, 6.0) / size  # 1.5 to 6 cycles per image side
    phase = rng.uniform(0.0, 2.0 * math.pi)
    u = (xx * math.cos(angle) + yy * math.sin(angle)) * scale + phase
    pattern = features[:, 2].reshape(size, size)
    if rng.random() < 0.5:
        np.sin(u, out=pattern)
    else:
        v = (yy * math.cos(angle) - xx * math.sin(angle)) * scale
        np.sign(np.sin(u) * np.sin(v), out=pattern)

    colours = rng.uniform(0.0, 255.0, size=(2, 3))
    tint = rng.uniform(-1.0, 1.0, size=3) * rng.uniform(8.0, 35.0)
    mixing = np.stack([colours[0], colours[1] - colours[0], tint]).astype(np.float32)
    return features @ mixing


def _contrasting_colour(rng: np.random.Generator, local: np.ndarray) -> np.ndarray:
    """A random colour at least ``MIN_CONTRAST`` away from ``local`` (the mean background under
    the shape); after a few rejections, fall back to the channel-wise opposite extreme."""
    for _ in range(_COLOUR_TRIES):
        colour = rng.uniform(0.0, 255.0, size=3)
        if float(np.linalg.norm(colour - local)) >= MIN_CONTRAST:
            return colour.astype(np.float32)
    return np.where(local > 127.5, rng.uniform(0.0, 40.0, 3), rng.uniform(215.0, 255.0, 3)).astype(
        np.float32
    )


def _paint(
    rng: np.random.Generator,
    image: np.ndarray,
    pixels: np.ndarray,
    size: int,
    circle: Tuple[float, float, float],
) -> None:
    """Paint the flat ``pixels`` of ``image`` in a colour that contrasts with what is under them,
    with a gentle shading across the shape (centre and radius ``circle``), so its pixels are not
    one flat colour either."""
    if pixels.size == 0:
        return
    cx, cy, radius = circle
    colour = _contrasting_colour(rng, image[pixels].mean(axis=0))
    angle = rng.uniform(0.0, 2.0 * math.pi)
    rows, cols = np.divmod(pixels, size)
    shade = ((cols + 0.5 - cx) * math.cos(angle) + (rows + 0.5 - cy) * math.sin(angle)) * (
        12.0 / radius
    )
    image[pixels] = colour + shade[:, None].astype(np.float32)


def _check(size: int, max_shapes: int) -> None:
    """Fail early with a clear message instead of producing empty or unrecognisable shapes."""
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE}, got {size}")
    if max_shapes < 1:
        raise ValueError(f"max_shapes must be at least 1, got {max_shapes}")


def generate_sample(
    rng: np.random.Generator, size: int = 64, max_shapes: int = 1, varied: bool = False
) -> Sample:
    """Draw one sample from ``rng``.

    With ``max_shapes == 1`` (classification) the image holds exactly one shape, of a uniformly
    drawn class, spanning 30-70 % of the side. With ``max_shapes > 1`` (segmentation) it holds
    1..max_shapes shapes of distinct classes (repeats only beyond five shapes): the first is the
    large main shape, the others smaller; positions that overlap earlier shapes are re-drawn a few
    times, and where overlap remains the later shape overwrites the earlier one in both image and
    mask. ``label`` is then the class covering the most mask pixels (the largest visible shape).

    ``varied`` also draws from ``models.demo.styles`` (other backgrounds for half the samples,
    outlined and hollow shapes, a wider noise range), for training; without it the draws, and so
    the images, are exactly the usual style's.
    """
    _check(size, max_shapes)
    if varied and rng.random() < VARIED_BACKGROUND_SHARE:
        image = styles.background(rng, size)
    else:
        image = _background(rng, size)  # (H * W, 3): painting by flat index is the fast path
    mask = np.zeros((size, size), dtype=np.uint8)
    count = 1 if max_shapes == 1 else int(rng.integers(1, max_shapes + 1))
    classes = rng.choice(len(SHAPE_CLASSES), size=count, replace=count > len(SHAPE_CLASSES))
    placed: List[Tuple[float, float, float]] = []

    for index, kind in enumerate(int(k) for k in classes):
        low, high = MAIN_EXTENT if index == 0 else EXTRA_EXTENT
        radius = 0.5 * size * rng.uniform(low, high)
        # Keep the centre far enough in that the shape is fully or mostly inside the image.
        margin = 0.85 * radius
        # Prefer a position whose circumcircle clears every earlier shape's (a cheap, conservative
        # test); when none is found, the last candidate overlaps and overwrites.
        for _ in range(_PLACEMENT_TRIES):
            cx, cy = (float(c) for c in rng.uniform(margin, size - margin, size=2))
            if all(math.hypot(cx - x, cy - y) >= radius + r for x, y, r in placed):
                break
        placed.append((cx, cy, radius))
        shape = rasterise(kind, rng, size, cx, cy, radius)
        if not shape.any():  # only possible for degenerate tiny sizes; keep the mask honest
            continue
        parts = styles.stroke(rng, shape, radius) if varied else (shape,)
        for part in parts:  # an outline is painted after, and so over, its fill
            _paint(rng, image, np.flatnonzero(part), size, (cx, cy, radius))
        mask.ravel()[np.flatnonzero(np.logical_or.reduce(parts))] = kind + 1

    sigma = np.float32(rng.uniform(*(VARIED_NOISE if varied else NOISE)))
    image += _noise(rng, size * size * 3).reshape(size * size, 3) * sigma
    np.clip(image, 0.0, 255.0, out=image)
    rgb = image.round(out=image).astype(np.uint8).reshape(size, size, 3)
    if count == 1:
        label = int(classes[0])
    else:
        areas = np.bincount(mask.ravel(), minlength=len(SEGMENTATION_CLASSES))[1:]
        label = int(np.argmax(areas))
    return Sample(image=rgb, label=label, mask=mask)


def generate_batch(
    seed: int, count: int, size: int = 64, max_shapes: int = 1, varied: bool = False
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` samples from ``np.random.default_rng(seed)``, stacked: images (N, H, W, 3) uint8,
    labels (N,) int64, masks (N, H, W) uint8. Samples are drawn in order from one generator, so a
    batch is bit-identical for a seed and a shorter batch is a prefix of a longer one."""
    _check(size, max_shapes)
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    labels = np.empty((count,), dtype=np.int64)
    masks = np.empty((count, size, size), dtype=np.uint8)
    for i in range(count):
        sample = generate_sample(rng, size=size, max_shapes=max_shapes, varied=varied)
        images[i], labels[i], masks[i] = sample.image, sample.label, sample.mask
    return images, labels, masks


def save_examples(
    directory: Union[str, os.PathLike], seed: int, count: int, size: int = 64
) -> Dict[str, str]:
    """Write ``count`` single-shape samples as ``shape_NNN.png`` and ``shape_NNN.jpg`` (the same
    image in both formats, since the service must decode both) plus ``labels.json`` mapping each
    file name to its class name; return that mapping. Used for demo requests, load tests, docs."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    images, labels, _ = generate_batch(seed, count, size=size)
    names: Dict[str, str] = {}
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        picture = Image.fromarray(pixels)
        stem = f"shape_{i:03d}"
        picture.save(out / f"{stem}.png")
        picture.save(out / f"{stem}.jpg", quality=92)
        names[f"{stem}.png"] = names[f"{stem}.jpg"] = SHAPE_CLASSES[int(label)]
    (out / "labels.json").write_text(json.dumps(names, indent=2, sort_keys=True) + "\n")
    return names


__all__: List[str] = [
    "SEGMENTATION_CLASSES",
    "SHAPE_CLASSES",
    "Sample",
    "generate_batch",
    "generate_sample",
    "save_examples",
]
