"""What happens to an image on its way from a camera or a drawing program to the model: it is
cropped, its colours shift, it is blurred, it is saved at some size as a JPEG of some quality
(or a PNG), and the service decodes it and resizes it to the model's input.

``as_uploaded`` draws that whole path at random for training; ``encode`` and ``decode`` are the
fixed steps the held-out evaluation uses. ``decode`` takes the steps of the service's own
pre-processing (``service.imaging``: reduced-scale JPEG decoding, RGB, bilinear resize) with
Pillow alone, so that ``models/`` does not depend on ``service/``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from PIL import Image, ImageFilter

from models.demo.shapes import generate_sample

RESIZE_REDUCING_GAP = 3.0
"""The service's resize shortcut (``service.imaging.RESIZE_REDUCING_GAP``)."""


@dataclass(frozen=True)
class Variation:
    """Ranges of the random upload path; the defaults are what the demo models train with."""

    sides: Tuple[int, int] = (40, 256)  # the uploaded image's side, drawn log-uniformly
    jpeg_share: float = 0.7
    quality: Tuple[int, int] = (40, 95)
    crop_area: Tuple[float, float] = (0.8, 1.0)
    kept_share: float = 0.85  # a crop keeps at least this share of the main shape's pixels
    blur_share: float = 0.2
    blur_radius: Tuple[float, float] = (0.3, 1.0)  # at 64 px; scaled with the uploaded side
    brightness: Tuple[float, float] = (0.8, 1.2)
    contrast: Tuple[float, float] = (0.7, 1.3)
    saturation: Tuple[float, float] = (0.6, 1.4)
    gamma: Tuple[float, float] = (0.8, 1.25)
    plain_share: float = 0.0  # images in the usual style at the model's side, as drawn


RENDER_SIDES = (48, 64, 96, 128)
"""Sides the training images are drawn at before their upload: finer drawings have thinner
edges and less noise per pixel once resized, as a large photo of a shape does."""

VARIED_SHARE = 0.4
"""Share of training images drawn with ``varied`` (other backgrounds and line styles); the rest
are the usual style, which is what held-out images are."""

_CROP_TRIES = 4
_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def encode(image: Image.Image, quality: Optional[int]) -> bytes:
    """PNG bytes (``quality`` None) or JPEG bytes at ``quality``."""
    buffer = io.BytesIO()
    if quality is None:
        image.save(buffer, format="PNG", compress_level=1)  # lossless at any level: the fastest
    else:
        image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode(data: bytes, side: int) -> np.ndarray:
    """Uploaded bytes -> (side, side, 3) uint8, as the service pre-processes them."""
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (side, side))
    return decode_pixels(image.convert("RGB"), side)


def decode_pixels(image: Image.Image, side: int) -> np.ndarray:
    """A decoded RGB image -> (side, side, 3) uint8: the service's resize."""
    if image.size != (side, side):
        image = image.resize(
            (side, side), Image.Resampling.BILINEAR, reducing_gap=RESIZE_REDUCING_GAP
        )
    return np.array(image)  # writable, so torch.from_numpy takes it without a warning


def jitter_colours(rng: np.random.Generator, image: np.ndarray, variation: Variation) -> np.ndarray:
    """Brightness, contrast, saturation and gamma drawn from ``variation``; uint8 in and out."""
    pixels = image.astype(np.float32) / 255.0
    grey = pixels @ _GREY
    pixels = grey[..., None] + (pixels - grey[..., None]) * rng.uniform(*variation.saturation)
    pixels = (pixels - grey.mean()) * rng.uniform(*variation.contrast) + grey.mean()
    pixels *= rng.uniform(*variation.brightness)
    np.clip(pixels, 0.0, 1.0, out=pixels)
    pixels **= rng.uniform(*variation.gamma)
    return (pixels * 255.0).round().astype(np.uint8)


def crop_box(
    rng: np.random.Generator, mask: np.ndarray, keep: Optional[int], variation: Variation
) -> Tuple[int, int, int, int]:
    """A random crop (left, top, right, bottom) of a square image; with ``keep`` (a mask value)
    the crop must keep ``variation.kept_share`` of that class's pixels, so a classification
    label stays true. Falls back to the whole image."""
    side = mask.shape[0]
    for _ in range(_CROP_TRIES):
        area = rng.uniform(*variation.crop_area)
        width = height = max(1, round(side * math.sqrt(area)))
        left, top = (int(v) for v in rng.integers(0, side - width + 1, size=2))
        box = (left, top, left + width, top + height)
        if keep is None:
            return box
        inside = int((mask[top : top + height, left : left + width] == keep).sum())
        if inside >= variation.kept_share * int((mask == keep).sum()):
            return box
    return (0, 0, side, side)


def as_uploaded(
    rng: np.random.Generator,
    image: np.ndarray,
    mask: np.ndarray,
    side: int,
    keep: Optional[int],
    variation: Variation = Variation(),  # frozen, so one shared default is safe
) -> Tuple[np.ndarray, np.ndarray]:
    """One random upload of (``image``, ``mask``): both come back at (side, side), the image as
    the service would feed it to the model, the mask cut and resized (nearest) to match."""
    box = crop_box(rng, mask, keep, variation)
    uploaded = round(math.exp(rng.uniform(*np.log(variation.sides))))
    picture = Image.fromarray(jitter_colours(rng, image, variation)).resize(
        (uploaded, uploaded), Image.Resampling.BILINEAR, box=box
    )
    if rng.random() < variation.blur_share:
        radius = rng.uniform(*variation.blur_radius) * uploaded / side
        picture = picture.filter(ImageFilter.GaussianBlur(radius))
    if rng.random() < variation.jpeg_share:
        quality = int(rng.integers(variation.quality[0], variation.quality[1] + 1))
        pixels = decode(encode(picture, quality), side)
    else:  # a PNG decodes to exactly these pixels: skip the round trip
        pixels = decode_pixels(picture, side)
    cut = Image.fromarray(mask).resize((side, side), Image.Resampling.NEAREST, box=box)
    return pixels, np.asarray(cut)


def uploaded_batch(
    seed: int, count: int, side: int, max_shapes: int, variation: Variation = Variation()
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` training samples: ``variation.plain_share`` of them as drawn, the others
    (``VARIED_SHARE`` of them in other styles) drawn at one of ``RENDER_SIDES`` and sent through
    a random upload: images (N, side, side, 3) uint8, labels
    (N,) int64, masks (N, side, side) uint8, all from ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, side, side, 3), dtype=np.uint8)
    labels = np.empty((count,), dtype=np.int64)
    masks = np.empty((count, side, side), dtype=np.uint8)
    for i in range(count):
        # no draw when plain_share is 0: the images of a variation without it stay the same
        if variation.plain_share and rng.random() < variation.plain_share:
            sample = generate_sample(rng, size=side, max_shapes=max_shapes)
            images[i], labels[i], masks[i] = sample.image, sample.label, sample.mask
            continue
        drawn = int(rng.choice(RENDER_SIDES))
        varied = bool(rng.random() < VARIED_SHARE)
        sample = generate_sample(rng, size=drawn, max_shapes=max_shapes, varied=varied)
        keep = sample.label + 1 if max_shapes == 1 else None
        images[i], masks[i] = as_uploaded(rng, sample.image, sample.mask, side, keep, variation)
        labels[i] = sample.label
    return images, labels, masks
