"""Image bytes built at test time: valid-but-odd images the service must accept, and broken or
hostile ones it must refuse with a clear error. Each builder is deterministic and small."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from models.demo.shapes import SHAPE_CLASSES, generate_batch

SEED = 6006


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def shape_sample(index: int = 0) -> tuple[bytes, str]:
    """A demo image (PNG) and the class the demo classifier must give it."""
    images, labels, _ = generate_batch(SEED, index + 1, 64)
    return encode(Image.fromarray(images[index]), "PNG"), SHAPE_CLASSES[int(labels[index])]


def noise(width: int = 64, height: int = 64, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(SEED)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)


def jpeg() -> bytes:
    return encode(noise(), "JPEG", quality=90)


def png() -> bytes:
    return encode(noise(), "PNG")


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def corrupt_huffman_jpeg() -> bytes:
    """A JPEG whose first Huffman table (DHT, FF C4) declares impossible code counts."""
    data = bytearray(jpeg())
    start = data.index(b"\xff\xc4")
    counts = start + 5  # marker (2), length (2), table class/id (1), then 16 code counts
    data[counts : counts + 16] = b"\xff" * 16
    return bytes(data)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_bomb(side: int = 65_535) -> bytes:
    """A PNG that declares side x side 1-bit pixels (4.3 G pixels at the default) in ~100 bytes:
    decoding it would allocate gigabytes, so it must be refused from its header."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + (png_chunk(b"IEND", b""))
    )


def png_16bit() -> bytes:
    ramp = np.linspace(0, 65535, 64 * 64, dtype=np.uint16).reshape(64, 64)
    return encode(Image.fromarray(ramp), "PNG")


def png_palette() -> bytes:
    return encode(noise().convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG")


def png_rgba() -> bytes:
    image = noise().convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize((64, 64)))
    return encode(image, "PNG")


def png_gray() -> bytes:
    return encode(noise().convert("L"), "PNG")


def jpeg_cmyk() -> bytes:
    return encode(noise().convert("CMYK"), "JPEG")


def jpeg_exif_rotated() -> bytes:
    """A 64x32 JPEG tagged orientation 6 (turn 90 degrees): upright it is 32x64."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(noise(64, 32), "JPEG", exif=exif.tobytes())


def gif_animated() -> bytes:
    frames = [noise().convert("P"), Image.new("P", (64, 64), 3), Image.new("P", (64, 64), 9)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def tiff_multiframe() -> bytes:
    frames = [noise(), Image.new("RGB", (64, 64), (0, 0, 255)), Image.new("RGB", (64, 64))]
    return encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])


def webp() -> bytes:
    return encode(noise(), "WEBP")


def bmp() -> bytes:
    return encode(noise(), "BMP")


def one_pixel() -> bytes:
    return encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG")


def very_wide() -> bytes:
    return encode(noise(20_000, 10), "PNG")


SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    b'<circle cx="32" cy="32" r="20" fill="red"/></svg>'
)
HTML = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"
TEXT = b"hello, this is not an image\n" * 10
