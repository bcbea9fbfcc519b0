"""The demo data generator: seeded determinism, array contracts, class balance, masks that match
what is drawn, visible texture and contrast, and the example files used by demos and load tests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.demo import shapes
from models.demo.shapes import (
    SEGMENTATION_CLASSES,
    SHAPE_CLASSES,
    Sample,
    generate_batch,
    generate_sample,
    save_examples,
)


@pytest.fixture(scope="module")
def single() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """200 classification samples, shared: generating them once keeps the module fast."""
    return generate_batch(seed=11, count=200)


@pytest.fixture(scope="module")
def multi() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """100 segmentation samples with up to four shapes each."""
    return generate_batch(seed=12, count=100, max_shapes=4)


def ring_around(region: np.ndarray, width: int = 3) -> np.ndarray:
    """Pixels within ``width`` (Chebyshev) of ``region`` but outside it: the local background."""
    grown = region.copy()
    for _ in range(width):
        padded = np.pad(grown, 1)
        grown = (
            padded[1:-1, 1:-1]
            | padded[:-2, 1:-1]
            | padded[2:, 1:-1]
            | padded[1:-1, :-2]
            | padded[1:-1, 2:]
            | padded[:-2, :-2]
            | padded[:-2, 2:]
            | padded[2:, :-2]
            | padded[2:, 2:]
        )
    return grown & ~region


def test_class_tuples() -> None:
    assert SHAPE_CLASSES == ("circle", "square", "triangle", "star", "cross")
    assert SEGMENTATION_CLASSES[0] == "background"
    assert SEGMENTATION_CLASSES[1:] == SHAPE_CLASSES


@pytest.mark.parametrize("max_shapes", [1, 3])
def test_same_seed_is_bit_identical_and_different_seed_differs(max_shapes: int) -> None:
    first = generate_batch(seed=5, count=12, max_shapes=max_shapes)
    again = generate_batch(seed=5, count=12, max_shapes=max_shapes)
    other = generate_batch(seed=6, count=12, max_shapes=max_shapes)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[2], other[2])


def test_batch_is_the_sequence_of_samples_from_one_generator() -> None:
    images, labels, masks = generate_batch(seed=3, count=4, size=48)
    rng = np.random.default_rng(3)
    for i in range(4):
        sample = generate_sample(rng, size=48)
        assert np.array_equal(sample.image, images[i])
        assert sample.label == labels[i]
        assert np.array_equal(sample.mask, masks[i])
    shorter = generate_batch(seed=3, count=2, size=48)
    assert np.array_equal(shorter[0], images[:2])


@pytest.mark.parametrize(("size", "max_shapes"), [(64, 1), (96, 1), (128, 3)])
def test_shapes_and_dtypes(size: int, max_shapes: int) -> None:
    images, labels, masks = generate_batch(seed=0, count=3, size=size, max_shapes=max_shapes)
    assert images.shape == (3, size, size, 3) and images.dtype == np.uint8
    assert labels.shape == (3,) and labels.dtype == np.int64
    assert masks.shape == (3, size, size) and masks.dtype == np.uint8
    sample = generate_sample(np.random.default_rng(0), size=size, max_shapes=max_shapes)
    assert isinstance(sample, Sample) and isinstance(sample.label, int)
    assert sample.image.shape == (size, size, 3) and sample.image.dtype == np.uint8
    assert sample.mask.shape == (size, size) and sample.mask.dtype == np.uint8
    with pytest.raises(dataclasses.FrozenInstanceError):
        sample.label = 0  # type: ignore[misc]


def test_empty_batch_and_invalid_arguments() -> None:
    images, labels, masks = generate_batch(seed=0, count=0)
    assert images.shape == (0, 64, 64, 3) and labels.shape == (0,) and masks.shape == (0, 64, 64)
    with pytest.raises(ValueError):
        generate_batch(seed=0, count=-1)
    with pytest.raises(ValueError):
        generate_batch(seed=0, count=1, size=8)
    with pytest.raises(ValueError):
        generate_sample(np.random.default_rng(0), max_shapes=0)


def test_labels_cover_every_class_roughly_evenly(single: tuple[np.ndarray, ...]) -> None:
    _, labels, _ = single
    assert labels.min() >= 0 and labels.max() < len(SHAPE_CLASSES)
    counts = np.bincount(labels, minlength=len(SHAPE_CLASSES))
    assert (counts >= 0.10 * len(labels)).all(), counts


def test_classification_mask_is_the_one_labelled_shape(single: tuple[np.ndarray, ...]) -> None:
    _, labels, masks = single
    for label, mask in zip(labels, masks, strict=True):
        assert set(np.unique(mask).tolist()) == {0, int(label) + 1}
        # Extent 30-70 % of the side: a small triangle covers ~2.5 %, a large circle ~38 %.
        assert 0.015 <= (mask > 0).mean() <= 0.45


def test_multi_shape_masks_and_largest_region_label(multi: tuple[np.ndarray, ...]) -> None:
    _, labels, masks = multi
    distinct = []
    for label, mask in zip(labels, masks, strict=True):
        assert mask.max() < len(SEGMENTATION_CLASSES)
        areas = np.bincount(mask.ravel(), minlength=len(SEGMENTATION_CLASSES))[1:]
        assert areas[label] == areas.max() > 0
        distinct.append(int((areas > 0).sum()))
    # Segmentation data really mixes classes: most samples hold several, some hold three or more.
    assert np.mean(np.array(distinct) > 1) > 0.5
    assert max(distinct) >= 3


def test_background_is_textured_and_noisy(single: tuple[np.ndarray, ...]) -> None:
    images, _, masks = single
    for image, mask in zip(images, masks, strict=True):
        background = image[mask == 0].astype(np.float64)
        assert background.std(axis=0).max() > 6.0
        # Noise: neighbouring background pixels differ, not only far-apart ones.
        rows = image[:, 1:].astype(np.int16) - image[:, :-1]
        both = (mask[:, 1:] == 0) & (mask[:, :-1] == 0)
        assert np.abs(rows[both]).mean() > 2.0


def test_shapes_contrast_with_their_surroundings(
    single: tuple[np.ndarray, ...], multi: tuple[np.ndarray, ...]
) -> None:
    distances = []
    for images, _, masks in (single, multi):
        for image, mask in zip(images, masks, strict=True):
            region = mask == mask[mask > 0][0]
            ring = ring_around(region) & (mask == 0)
            if ring.sum() < 10:
                continue
            inside = image[region].astype(np.float64).mean(axis=0)
            outside = image[ring].astype(np.float64).mean(axis=0)
            distances.append(float(np.linalg.norm(inside - outside)))
    distances_array = np.array(distances)
    assert len(distances_array) > 250
    assert np.median(distances_array) > 80.0
    assert (distances_array > 50.0).mean() > 0.95


def test_every_mask_pixel_carries_the_shape_paint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without noise, a shape's pixels are its colour plus a linear shading: a plane per channel.
    If the mask and the painted region differed by even one pixel, that pixel would be background
    and fall off the plane (the contrast rule keeps background far from the paint)."""
    monkeypatch.setattr(shapes, "_noise", lambda rng, count: np.zeros(count, dtype=np.float32))
    images, _, masks = generate_batch(seed=21, count=30)
    for image, mask in zip(images, masks, strict=True):
        rows, cols = np.nonzero(mask)
        paint = image[rows, cols].astype(np.float64)
        design = np.stack([np.ones_like(rows), rows, cols], axis=1).astype(np.float64)
        unclipped = ((paint > 0) & (paint < 255)).all(axis=1)
        assert unclipped.mean() > 0.3
        coeffs, *_ = np.linalg.lstsq(design[unclipped], paint[unclipped], rcond=None)
        predicted = np.clip(design @ coeffs, 0, 255)
        assert np.abs(predicted - paint).max() <= 1.0


def test_save_examples_writes_readable_files_and_labels(tmp_path: Path) -> None:
    target = tmp_path / "examples"
    names = save_examples(target, seed=4, count=3, size=64)
    written = json.loads((target / "labels.json").read_text())
    assert written == names
    assert sorted(names) == sorted(
        f"shape_{i:03d}.{ext}" for i in range(3) for ext in ("png", "jpg")
    )
    images, labels, _ = generate_batch(seed=4, count=3, size=64)
    for i in range(3):
        assert names[f"shape_{i:03d}.png"] == SHAPE_CLASSES[int(labels[i])]
        with Image.open(target / f"shape_{i:03d}.png") as png:
            assert png.format == "PNG" and png.mode == "RGB"
            assert np.array_equal(np.asarray(png), images[i])
        with Image.open(target / f"shape_{i:03d}.jpg") as jpg:
            assert jpg.format == "JPEG" and jpg.size == (64, 64)
            decoded = np.asarray(jpg.convert("RGB")).astype(np.float64)
            assert np.abs(decoded - images[i]).mean() < 12.0
