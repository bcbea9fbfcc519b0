"""Valid images in the less common corners of the supported formats (modes, compressions,
interlacing, EXIF orientations, animation, transparency), and corrupt or foreign files that
must be refused as what they are. Deterministic and small, built at test time."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image, ImageCms

from tests.reliability.corpus.images import encode, jpeg, noise, png, png_chunk

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def jpeg_progressive() -> bytes:
    return encode(noise(), "JPEG", quality=85, progressive=True)


def jpeg_grey() -> bytes:
    return encode(noise().convert("L"), "JPEG")


def jpeg_oriented(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(noise(48, 32), "JPEG", exif=exif.tobytes())


def jpeg_broken_exif() -> bytes:
    """A JPEG whose APP1 (EXIF) segment holds garbage after its Exif header."""
    data = jpeg()
    segment = b"Exif\0\0" + b"\xde\xad\xbe\xef" * 8
    app1 = b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment
    return data[:2] + app1 + data[2:]


def jpeg_icc() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(noise(), "JPEG", icc_profile=profile)


def jpeg_soi_only() -> bytes:
    return b"\xff\xd8\xff"


def png_interlaced() -> bytes:
    """Adam7: Pillow writes no interlaced PNGs, so one is built by hand from its seven passes."""
    pixels = np.asarray(noise(16, 16))
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)]  # fmt: skip
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = pixels[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\0" + row.tobytes() for row in sub)
    header = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 1)
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))  # fmt: skip


def png_grey_alpha() -> bytes:
    image = noise().convert("LA")
    return encode(image, "PNG")


def png_palette_transparent() -> bytes:
    image = noise().convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return encode(image, "PNG", transparency=0)


def png_bilevel() -> bytes:
    return encode(noise().convert("1"), "PNG")


def png_bad_ihdr_crc() -> bytes:
    """Pillow checks the CRC of the header chunk (not of the pixel data's)."""
    data = bytearray(png())
    data[8 + 8 + 13] ^= 0xFF  # signature, IHDR length and type, its 13 bytes: then its CRC
    return bytes(data)


def png_trailing_garbage() -> bytes:
    return png() + b"\0garbage after IEND" * 50


def png_zero_size() -> bytes:
    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


def gif_single() -> bytes:
    return encode(noise().convert("P"), "GIF")


def gif_transparent() -> bytes:
    return encode(noise().convert("P"), "GIF", transparency=3)


def bmp_bilevel() -> bytes:
    return encode(noise().convert("1"), "BMP")


def bmp_rgba() -> bytes:
    return encode(noise().convert("RGBA"), "BMP")


def tiff_lzw() -> bytes:
    return encode(noise(), "TIFF", compression="tiff_lzw")


def tiff_grey16() -> bytes:
    ramp = np.linspace(0, 65535, 32 * 32, dtype=np.uint16).reshape(32, 32)
    return encode(Image.fromarray(ramp), "TIFF")


def tiff_float() -> bytes:
    values = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    return encode(Image.fromarray(values, mode="F"), "TIFF")


def tiff_cmyk() -> bytes:
    return encode(noise().convert("CMYK"), "TIFF")


def webp_lossless() -> bytes:
    return encode(noise(), "WEBP", lossless=True)


def webp_alpha() -> bytes:
    return encode(noise().convert("RGBA"), "WEBP")


def webp_animated() -> bytes:
    frames = [noise(), Image.new("RGB", (64, 64), (0, 255, 0))]
    return encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=40)


def two_by_two() -> bytes:
    return encode(noise(2, 2), "PNG")


def tall() -> bytes:
    return encode(noise(10, 20_000), "PNG")


def gzip_bytes() -> bytes:
    return gzip.compress(png())


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.png", png())
    return buffer.getvalue()


def ico() -> bytes:
    return encode(noise(32, 32), "ICO")


RANDOM = np.random.default_rng(13).integers(0, 256, 1024, dtype=np.uint8).tobytes()
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
