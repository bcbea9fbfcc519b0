"""Shapes as exact pixel masks: each shape is rasterised as a boolean mask on the pixel centres
(signed distance for the circle, even-odd point-in-polygon for the rest), so that whatever is
painted through the mask and the segmentation mask agree pixel for pixel.

Shape kinds are the indices of ``models.demo.shapes.SHAPE_CLASSES``.
"""

from __future__ import annotations

import math

import numpy as np

CIRCLE, SQUARE, TRIANGLE, STAR, CROSS = range(5)


def _polygon_vertices(kind: int, rng: np.random.Generator, radius: float) -> np.ndarray:
    """Vertices (V, 2) relative to the centre, for a polygon whose circumradius is ``radius``, at a
    random rotation (a triangle's vertices are also jittered a little: equilateral-ish)."""
    rotation = rng.uniform(0.0, 2.0 * math.pi)
    if kind == SQUARE:
        angles = rotation + np.arange(4) * (math.pi / 2.0)
        radii = np.full(4, radius)
    elif kind == TRIANGLE:
        angles = rotation + np.arange(3) * (2.0 * math.pi / 3.0) + rng.uniform(-0.12, 0.12, 3)
        radii = radius * rng.uniform(0.9, 1.0, 3)
    elif kind == STAR:
        # Five points with a clear inner radius, so the star is not mistaken for a pentagon.
        angles = rotation + np.arange(10) * (math.pi / 5.0)
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * rng.uniform(0.40, 0.50))
    elif kind == CROSS:
        # Arm width is one third of the cross's span; (a, a/3) lies on the circumcircle.
        a = radius / math.hypot(1.0, 1.0 / 3.0)
        w = a / 3.0
        corners = np.array(
            [[w, w], [a, w], [a, -w], [w, -w], [w, -a], [-w, -a], [-w, -w], [-a, -w],
             [-a, w], [-w, w], [-w, a], [w, a]],
        )  # fmt: skip
        cos, sin = math.cos(rotation), math.sin(rotation)
        return corners @ np.array([[cos, sin], [-sin, cos]])
    else:
        raise ValueError(f"not a polygon shape: {kind}")
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def rasterise(
    kind: int, rng: np.random.Generator, size: int, cx: float, cy: float, radius: float
) -> np.ndarray:
    """Boolean (size, size) mask of the pixels whose centre lies inside the shape; only the
    shape's bounding box is evaluated, which keeps generation fast."""
    if kind == CIRCLE:
        vertices = np.array([[-radius, -radius], [radius, radius]])  # just the bounding box
    else:
        vertices = _polygon_vertices(kind, rng, radius)
    (left, top), (right, bottom) = vertices.min(axis=0), vertices.max(axis=0)
    x0, x1 = max(math.floor(cx + left), 0), min(math.ceil(cx + right) + 1, size)
    y0, y1 = max(math.floor(cy + top), 0), min(math.ceil(cy + bottom) + 1, size)
    mask = np.zeros((size, size), dtype=bool)
    if x0 >= x1 or y0 >= y1:
        return mask
    px = np.arange(x0, x1, dtype=np.float64) + 0.5 - cx
    py = np.arange(y0, y1, dtype=np.float64) + 0.5 - cy
    if kind == CIRCLE:
        mask[y0:y1, x0:x1] = px[None, :] ** 2 + py[:, None] ** 2 <= radius * radius
        return mask
    # Even-odd rule, vectorised over edges and rows: the x where each edge crosses each row, then
    # a pixel is inside when an odd number of crossings lie to its right.
    ax, ay = vertices[:, 0:1], vertices[:, 1:2]
    bx, by = np.roll(ax, -1, axis=0), np.roll(ay, -1, axis=0)
    rows = py[None, :]
    spans = (ay > rows) != (by > rows)  # (E, rows)
    dy = np.where(by == ay, 1.0, by - ay)
    crossing = ax + (rows - ay) * (bx - ax) / dy  # (E, rows)
    crossing = np.where(spans, crossing, -np.inf)
    hits = px[None, None, :] < crossing[:, :, None]  # (E, rows, cols)
    mask[y0:y1, x0:x1] = np.logical_xor.reduce(hits, axis=0)
    return mask
