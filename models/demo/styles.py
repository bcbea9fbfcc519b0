"""Ways of drawing the shapes that the generator's usual style never shows: other backgrounds
(flat paper, soft colour blotches, a two-colour split) and shapes drawn with an outline of some
line width, or as an outline alone.

A model trained only on the usual style learns the generator rather than the shapes (issue
14: 0.98 on its own images, 0.86 on the same images as JPEG). Mixed into training
(``generate_sample(..., varied=True)``), these styles make the shape's outline, not its texture,
the thing to recognise. Every random draw comes from the caller's generator, so a seed still
determines the data.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np
from PIL import Image

LINE_WIDTH = (0.12, 0.35)
"""Outline width as a fraction of the shape's circumradius (at least one pixel)."""

STYLE_SHARES = (0.5, 0.3, 0.2)
"""Shares of the filled, outlined (filled with a border) and hollow (outline only) styles."""

PAPER_SHARE = 0.3
"""Share of flat backgrounds that are near-white, like a scanned page or a whiteboard."""

_BLOTCH_CELLS = (2, 7)


def erode(region: np.ndarray, width: int) -> np.ndarray:
    """``region`` shrunk by ``width`` pixels (4-neighbour steps); outside the image counts as
    outside the region, so a shape cut by the border gets an outline along the border too."""
    inner = region
    for _ in range(width):
        padded = np.pad(inner, 1)
        inner = (
            padded[1:-1, 1:-1]
            & padded[:-2, 1:-1]
            & padded[2:, 1:-1]
            & padded[1:-1, :-2]
            & padded[1:-1, 2:]
        )
    return inner


def stroke(
    rng: np.random.Generator, region: np.ndarray, radius: float
) -> Tuple[np.ndarray, np.ndarray]:
    """Split a shape's boolean ``region`` into (fill, outline), in a randomly drawn style:
    filled (all fill, no outline), outlined (an outline around a smaller fill) or hollow (the
    outline alone). Both are painted separately; the mask is their union."""
    style = int(rng.choice(len(STYLE_SHARES), p=STYLE_SHARES))
    width = max(1, round(rng.uniform(*LINE_WIDTH) * radius))
    nothing = np.zeros_like(region)
    if style == 0:
        return region, nothing
    inner = erode(region, width)
    outline = region & ~inner
    return (inner, outline) if style == 1 else (nothing, outline)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A noise-free (size * size, 3) float32 background of a kind the usual generator never
    draws: flat (sometimes near-white paper), soft blotches of colour, or two colours split
    along a random line."""
    kind = int(rng.integers(3))
    if kind == 0:
        low = 200.0 if rng.random() < PAPER_SHARE else 0.0
        colour = rng.uniform(low, 255.0, size=3).astype(np.float32)
        return np.broadcast_to(colour, (size * size, 3)).copy()
    if kind == 1:
        cells = int(rng.integers(*_BLOTCH_CELLS))
        grid = rng.uniform(0.0, 255.0, size=(cells, cells, 3)).astype(np.uint8)
        soft = Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(soft, dtype=np.float32).reshape(size * size, 3)
    centres = np.arange(size, dtype=np.float32) + 0.5
    angle = rng.uniform(0.0, 2.0 * math.pi)
    along = centres[None, :] * math.cos(angle) + centres[:, None] * math.sin(angle)
    cut = rng.uniform(float(along.min()), float(along.max()))
    colours = rng.uniform(0.0, 255.0, size=(2, 3)).astype(np.float32)
    return colours[(along > cut).ravel().astype(np.intp)]
