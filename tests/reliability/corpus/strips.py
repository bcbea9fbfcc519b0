"""Images that are tiny on the wire and huge in pixels: 1-bit strips built row by row with a
streaming zlib (never the whole pixel buffer in memory), and headers that declare more pixels
than the limit in formats other than PNG. Built once per session (``functools.cache``)."""

from __future__ import annotations

import struct
import zlib
from functools import cache

from tests.reliability.corpus.images import jpeg, png_chunk

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROWS_PER_PIECE = 1 << 16


@cache
def bilevel_strip(width: int, height: int) -> bytes:
    """A 1-bit greyscale PNG of ``width`` x ``height``, black but for the first pixel of each
    row; 40,000,000 x 1 is about 5 kB, 1 x 40,000,000 about 80 kB."""
    row_bytes = (width + 7) // 8
    compressor = zlib.compressobj(9)
    parts = []
    row = b"\0" + b"\x80" + b"\0" * (row_bytes - 1)  # filter byte, then the first pixel white
    for start in range(0, height, ROWS_PER_PIECE):
        parts.append(compressor.compress(row * min(ROWS_PER_PIECE, height - start)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) declares ``width`` x ``height``."""
    data = bytearray(jpeg())
    frame = data.index(b"\xff\xc0") + 5  # marker (2), length (2), precision (1)
    data[frame : frame + 4] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose logical screen and only image declare ``width`` x ``height``."""
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + image + b"\x02\x02\x44\x01\x00\x3b"


def bmp_declaring(width: int, height: int) -> bytes:
    """A 24-bit BMP header declaring ``width`` x ``height``, with a few bytes of pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    pixels = b"\0" * 64
    size = 14 + len(info) + len(pixels)
    return b"BM" + struct.pack("<IHHI", size, 0, 0, 14 + len(info)) + info + pixels


def webp_declaring(width: int, height: int) -> bytes:
    """An extended (VP8X) WebP header declaring ``width`` x ``height`` (each up to 2^24)."""
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + canvas
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x
