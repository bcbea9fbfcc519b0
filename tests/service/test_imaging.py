"""Decoding and pre-processing of uploads; every test image is generated here with Pillow."""

from __future__ import annotations

import io
import struct
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image, ImageFile

from models.demo.train import to_input
from models.repository.config import InputSpec
from service.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType
from service.imaging import (
    SUPPORTED_CONTENT_TYPES,
    check_content_type,
    decode_image,
    load_for_model,
    preprocess,
)

LIMIT = 10_000_000
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
QUADRANTS = (RED, GREEN, BLUE, (250, 200, 10))


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def quadrant_image(width: int = 32, height: int = 24) -> Image.Image:
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    half_h, half_w = height // 2, width // 2
    pixels[:half_h, :half_w], pixels[:half_h, half_w:] = QUADRANTS[0], QUADRANTS[1]
    pixels[half_h:, :half_w], pixels[half_h:, half_w:] = QUADRANTS[2], QUADRANTS[3]
    return Image.fromarray(pixels)


def noise_image(size: int = 64) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def forged_png(width: int, height: int) -> bytes:
    """A valid PNG header that declares any size, followed by almost no pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def pixel(image: Image.Image, x: int, y: int) -> np.ndarray:
    return np.asarray(image)[y, x].astype(int)


@pytest.mark.parametrize(
    ("fmt", "options", "tolerance"),
    [
        ("JPEG", {"quality": 95}, 12),
        ("PNG", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("BMP", {}, 0),
        ("GIF", {}, 0),
        ("TIFF", {}, 0),
    ],
)
def test_round_trip_every_format(fmt: str, options: dict[str, object], tolerance: int) -> None:
    image = decode_image(encode(quadrant_image(), fmt, **options), max_pixels=LIMIT)
    assert image.mode == "RGB" and image.size == (32, 24)
    for (x, y), colour in zip([(4, 4), (28, 4), (4, 20), (28, 20)], QUADRANTS, strict=True):
        assert np.abs(pixel(image, x, y) - colour).max() <= tolerance


def test_grayscale_becomes_equal_channels() -> None:
    image = decode_image(encode(Image.new("L", (8, 8), 77), "PNG"), max_pixels=LIMIT)
    assert image.mode == "RGB" and tuple(pixel(image, 3, 3)) == (77, 77, 77)


def test_palette_transparency_is_composited_over_white() -> None:
    palette_image = Image.new("P", (8, 4), 0)
    palette_image.putpalette([0, 0, 0, *BLUE])
    palette_image.paste(1, (4, 0, 8, 4))
    data = encode(palette_image, "PNG", transparency=0)
    image = decode_image(data, max_pixels=LIMIT)
    assert tuple(pixel(image, 1, 1)) == WHITE and tuple(pixel(image, 6, 1)) == BLUE


def test_rgba_is_composited_over_white() -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[:, 0], rgba[:, 1], rgba[:, 2] = (255, 0, 0, 0), (255, 0, 0, 255), (0, 0, 0, 128)
    image = decode_image(encode(Image.fromarray(rgba), "PNG"), max_pixels=LIMIT)
    assert tuple(pixel(image, 0, 0)) == WHITE
    assert tuple(pixel(image, 1, 0)) == RED
    assert np.abs(pixel(image, 2, 0) - 127).max() <= 1  # half black over white


def test_cmyk_jpeg() -> None:
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    assert np.abs(pixel(decode_image(data, max_pixels=LIMIT), 8, 8) - RED).max() <= 12


def test_16_bit_png_is_scaled_not_clipped() -> None:
    wide = np.array([[0, 32768, 65535]], dtype=np.uint16)
    data = encode(Image.fromarray(wide), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    grey = np.asarray(decode_image(data, max_pixels=LIMIT))[0, :, 0]
    assert grey[0] == 0 and abs(int(grey[1]) - 128) <= 1 and grey[2] == 255


def test_one_bit_image() -> None:
    bilevel = Image.new("1", (8, 2), 0)
    bilevel.paste(1, (4, 0, 8, 2))
    image = decode_image(encode(bilevel, "PNG"), max_pixels=LIMIT)
    assert tuple(pixel(image, 0, 0)) == (0, 0, 0) and tuple(pixel(image, 7, 1)) == WHITE


@pytest.mark.parametrize(("orientation", "top", "bottom"), [(6, RED, BLUE), (8, BLUE, RED)])
def test_exif_orientation_is_applied(
    orientation: int, top: tuple[int, int, int], bottom: tuple[int, int, int]
) -> None:
    stored = Image.new("RGB", (40, 20), RED)
    stored.paste(BLUE, (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    image = decode_image(data, max_pixels=LIMIT)
    assert image.size == (20, 40)
    assert np.abs(pixel(image, 10, 5) - top).max() <= 12
    assert np.abs(pixel(image, 10, 34) - bottom).max() <= 12
    _, original = load_for_model(data, InputSpec(height=8, width=8), max_pixels=LIMIT)
    assert original == (40, 20)


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_multi_frame_uses_the_first_frame(fmt: str) -> None:
    first, second = Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), BLUE)
    data = encode(first, fmt, save_all=True, append_images=[second])
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    assert tuple(pixel(decode_image(data, max_pixels=LIMIT), 4, 4)) == RED


def test_truncated_files_are_invalid() -> None:
    for fmt in ("JPEG", "PNG"):
        data = encode(noise_image(), fmt)
        with pytest.raises(InvalidImage, match="truncated"):
            decode_image(data[: len(data) // 2], max_pixels=LIMIT)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_huffman_table_is_invalid() -> None:
    data = bytearray(encode(noise_image(), "JPEG"))
    table = data.index(b"\xff\xc4")  # DHT: marker, length (2), class/id (1), 16 code counts
    data[table + 5 : table + 21] = b"\xff" * 16
    with pytest.raises(InvalidImage, match="could not decode"):
        decode_image(bytes(data), max_pixels=LIMIT)


@pytest.mark.parametrize(
    "data",
    [
        b"just some text",
        b"<!doctype html><html><body>hi</body></html>",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
    ],
)
def test_non_images_are_invalid(data: bytes) -> None:
    with pytest.raises(InvalidImage, match=r"could not identify .*JPEG, PNG, WEBP"):
        decode_image(data, max_pixels=LIMIT)


def test_empty_body_is_invalid() -> None:
    with pytest.raises(InvalidImage, match="empty body"):
        decode_image(b"", max_pixels=LIMIT)


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (9_000, 9_000)])
def test_decompression_bomb_is_refused_from_the_header(width: int, height: int) -> None:
    started = time.perf_counter()
    with pytest.raises(PayloadTooLarge, match="limit of 10,000,000 pixels"):
        decode_image(forged_png(width, height), max_pixels=LIMIT)
    assert time.perf_counter() - started < 0.5  # refused before any pixel is decoded


def test_pixel_limit_boundary() -> None:
    assert decode_image(encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=10_000)
    with pytest.raises(PayloadTooLarge, match=r"100x101 \(10,100 pixels\).*10,000 pixels"):
        decode_image(encode(Image.new("RGB", (100, 101)), "PNG"), max_pixels=10_000)


def test_pillow_bomb_guard_never_refuses_an_image_within_our_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # Pillow errors above 2,000 pixels
    data = encode(Image.new("RGB", (50, 50)), "PNG")  # 2,500 pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(PayloadTooLarge):  # Pillow's error and warning map to 413 ...
            decode_image(data, max_pixels=500)
        with pytest.raises(PayloadTooLarge):
            decode_image(encode(Image.new("RGB", (40, 40)), "PNG"), max_pixels=500)
        assert decode_image(data, max_pixels=3_000).size == (50, 50)  # ... but never ours
    assert Image.MAX_IMAGE_PIXELS == 3_000


@pytest.fixture(scope="module")
def large_jpeg() -> bytes:
    return encode(Image.new("RGB", (4000, 3000), (10, 200, 30)), "JPEG")


def test_large_jpeg_is_decoded_at_reduced_scale(large_jpeg: bytes) -> None:
    def timed(target: tuple[int, int] | None) -> tuple[float, tuple[int, int]]:
        runs = []
        for _ in range(2):
            started = time.perf_counter()
            size = decode_image(large_jpeg, max_pixels=20_000_000, target_size=target).size
            runs.append(time.perf_counter() - started)
        return min(runs), size

    full_time, full_size = timed(None)
    draft_time, draft_size = timed((64, 64))
    assert full_size == (4000, 3000)
    assert 64 <= draft_size[0] < 4000 and 64 <= draft_size[1] < 3000
    assert draft_time < full_time
    tensor, original = load_for_model(
        large_jpeg, InputSpec(height=64, width=48), max_pixels=20_000_000
    )
    assert tensor.shape == (3, 64, 48) and original == (3000, 4000)


@pytest.mark.parametrize("size", [16, 224])  # 224: large enough for torch's parallel kernels
def test_preprocess_equals_training_pre_processing(size: int) -> None:
    pixels = np.asarray(noise_image(size))
    spec = InputSpec(height=size, width=size, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    expected = to_input(pixels[None].copy(), spec.mean, spec.std)[0]
    tensor = preprocess(Image.fromarray(pixels), spec)
    assert tensor.dtype == torch.float32 and tensor.is_contiguous()
    assert torch.equal(tensor, expected)
    from_bytes, original = load_for_model(
        encode(Image.fromarray(pixels), "PNG"), spec, max_pixels=LIMIT
    )
    assert torch.equal(from_bytes, expected) and original == (size, size)


def test_bgr_order() -> None:
    pixels = np.asarray(noise_image(16))
    spec = InputSpec(height=16, width=16, color_order="BGR", mean=(0.1, 0.2, 0.3))
    expected = to_input(pixels[None, :, :, ::-1].copy(), spec.mean, spec.std)[0]
    assert torch.equal(preprocess(Image.fromarray(pixels), spec), expected)


def test_resize_to_the_model_size() -> None:
    spec = InputSpec(height=16, width=24, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    tensor = preprocess(Image.new("RGB", (37, 23), (51, 102, 204)), spec)
    assert tensor.shape == (3, 16, 24) and tensor.is_contiguous()
    expected = torch.tensor([0.2, 0.4, 0.8]).view(3, 1, 1).expand(3, 16, 24)
    assert torch.allclose(tensor, expected, atol=1e-6)
    grey = preprocess(Image.new("L", (5, 5), 255), spec)  # any mode is accepted
    assert grey.shape == (3, 16, 24) and torch.allclose(grey, torch.ones(3, 16, 24))


def test_concurrent_decoding_matches_sequential() -> None:
    payloads = [encode(noise_image(48), fmt) for fmt in ("JPEG", "PNG", "WEBP", "BMP")] * 4
    spec = InputSpec(height=32, width=32)

    def tensor_of(data: bytes) -> torch.Tensor:
        return load_for_model(data, spec, max_pixels=LIMIT)[0]

    sequential = [tensor_of(data) for data in payloads]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(tensor_of, payloads))
    assert all(torch.equal(a, b) for a, b in zip(sequential, results, strict=True))


@pytest.mark.parametrize(
    "content_type", ["image/png", "IMAGE/JPEG", "image/png; charset=binary", " image/webp ;q=1"]
)
def test_supported_content_types(content_type: str) -> None:
    check_content_type(content_type)


@pytest.mark.parametrize(
    "content_type", [None, "", "text/plain", "application/octet-stream", "image/svg+xml"]
)
def test_unsupported_content_types_name_the_supported_list(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as raised:
        check_content_type(content_type)
    assert raised.value.status == 415
    assert all(media_type in raised.value.message for media_type in SUPPORTED_CONTENT_TYPES)
