"""Encoded test images from the demo generator."""

import io

import numpy as np
from PIL import Image


def encode(array: np.ndarray, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format)
    return buffer.getvalue()


def solid(colour: tuple[int, int, int], size: int = 8) -> bytes:
    return encode(np.full((size, size, 3), colour, dtype=np.uint8))
