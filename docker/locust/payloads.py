"""Request bodies for the attnserve load test: demo images and Open Inference Protocol bodies.

Kept apart from ``locustfile.py`` and free of any locust import, so the tests can check these
bodies against the service's own parser without locust's gevent monkey-patching, and so the
locust container needs only Pillow and numpy. Images come from the demo generator
(``models.demo.shapes.generate_batch``) when the project is importable — the same distribution
the demo models were trained on — and otherwise from a small Pillow drawing of similar shapes on
a noisy background, which the demo models still classify (not always correctly: a load test
measures the service, not accuracy).
"""

from __future__ import annotations

import io
import json
import math
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZES: tuple[tuple[int, int], ...] = ((64, 64), (128, 128), (480, 320))
"""(width, height) of the generated images: the models' own 64x64, an upscaled 128, and a
photo-like 480x320 that the service must resize (and, for JPEG, may decode at reduced scale)."""

FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP")
CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
IMAGES_PER_COMBINATION = 4
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class EncodedImage:
    """One image as a client would upload it."""

    name: str
    data: bytes
    content_type: str
    width: int
    height: int


def _demo_pixels(seed: int, count: int, width: int, height: int) -> np.ndarray | None:
    """(count, height, width, 3) uint8 from the project's generator, or None without it.

    The generator draws squares, so a non-square size is the centre crop of a square one."""
    try:
        from models.demo.shapes import generate_batch
    except ImportError:
        return None
    side = max(width, height)
    images, _, _ = generate_batch(seed, count, size=side)
    top, left = (side - height) // 2, (side - width) // 2
    return images[:, top : top + height, left : left + width]


def _fallback_pixels(seed: int, count: int, width: int, height: int) -> np.ndarray:
    """Pillow drawing of one coloured circle, square, triangle or cross on a noisy gradient."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, height, width, 3), dtype=np.uint8)
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    for i in range(count):
        low, high = rng.uniform(0, 120, 3), rng.uniform(0, 120, 3)
        background = low + (high - low) * ramp + rng.normal(0, 12, (height, width, 3))
        picture = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(picture)
        radius = rng.uniform(0.15, 0.35) * min(width, height)
        cx = rng.uniform(radius, width - radius)
        cy = rng.uniform(radius, height - radius)
        colour = tuple(int(c) for c in rng.integers(160, 256, 3))
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        kind = i % 4
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        elif kind == 2:
            corners = [(cx + radius * math.cos(a), cy + radius * math.sin(a))
                       for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]  # fmt: skip
            draw.polygon(corners, fill=colour)
        else:
            arm = radius / 3
            draw.rectangle((cx - radius, cy - arm, cx + radius, cy + arm), fill=colour)
            draw.rectangle((cx - arm, cy - radius, cx + arm, cy + radius), fill=colour)
        out[i] = np.asarray(picture)
    return out


def make_pixels(
    seed: int, count: int, width: int, height: int, use_demo: bool = True
) -> np.ndarray:
    """(count, height, width, 3) uint8 RGB: the demo generator when available, else the fallback."""
    pixels = _demo_pixels(seed, count, width, height) if use_demo else None
    return pixels if pixels is not None else _fallback_pixels(seed, count, width, height)


def encode(pixels: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": 90} if image_format in ("JPEG", "WEBP") else {}
    Image.fromarray(pixels).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def build_image_pool(seed: int = 0, use_demo: bool = True) -> list[EncodedImage]:
    """Every size in every format, a few images each: 3 x 3 x 4 = 36 images, a few MB at most."""
    pool: list[EncodedImage] = []
    for size_index, (width, height) in enumerate(SIZES):
        pixels = make_pixels(seed + size_index, IMAGES_PER_COMBINATION, width, height, use_demo)
        for image_format in FORMATS:
            for i, image in enumerate(pixels):
                name = f"shape_{width}x{height}_{i}.{image_format.lower()}"
                data = encode(image, image_format)
                pool.append(EncodedImage(name, data, CONTENT_TYPES[image_format], width, height))
    return pool


def normalised_tensor(
    pixels: np.ndarray,
    height: int,
    width: int,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    color_order: str = "RGB",
) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, 3, height, width) float32, resized, reordered and normalised
    as the model's config says: what a client that pre-processes itself sends to v2's FP32 input
    (``mean``/``std`` are in the tensor's channel order, as in the config)."""
    resized = np.stack([
        np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
        for image in pixels
    ])  # fmt: skip
    if color_order == "BGR":
        resized = resized[..., ::-1]
    scaled = resized.astype(np.float32) / 255.0
    normalised = (scaled - np.float32(mean)) / np.float32(std)
    return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2), dtype=np.float32)


def v2_body(
    input_name: str, datatype: str, shape: list[int], binary: bytes, outputs: list[str]
) -> tuple[bytes, dict[str, str]]:
    """A v2 infer body with one input in Triton's binary tensor extension, and its headers.

    JSON cannot carry image bytes (the protocol's JSON BYTES are strings, which attnserve reads
    as UTF-8), so encoded images always travel as binary data; outputs come back binary too,
    as a real client would ask for, so the JSON encoder is not what the test measures."""
    header = {
        "inputs": [{"name": input_name, "datatype": datatype, "shape": shape,
                    "parameters": {"binary_data_size": len(binary)}}],
        "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in outputs],
    }  # fmt: skip
    json_bytes = json.dumps(header, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(json_bytes)),
    }
    return json_bytes + binary, headers


def v2_bytes_body(images: list[bytes], outputs: list[str]) -> tuple[bytes, dict[str, str]]:
    """BYTES [N] of encoded images: each element is a 4-byte little-endian length, then bytes."""
    binary = b"".join(struct.pack("<I", len(data)) + data for data in images)
    return v2_body("image", "BYTES", [len(images)], binary, outputs)


def v2_fp32_body(tensor: np.ndarray, outputs: list[str]) -> tuple[bytes, dict[str, str]]:
    """FP32 [N, 3, H, W] already normalised, as little-endian float32 binary data."""
    data = np.ascontiguousarray(tensor, dtype="<f4")
    return v2_body("input", "FP32", list(data.shape), data.tobytes(), outputs)


def v2_response_outputs(body: bytes, header_length: str | None) -> list[str]:
    """Names of the outputs in a v2 infer response (binary or JSON)."""
    json_part = body[: int(header_length)] if header_length else body
    return [output["name"] for output in json.loads(json_part)["outputs"]]
