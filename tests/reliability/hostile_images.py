"""Images for the hostile corpus beyond the first table: the corners of every supported format
that must be served, files that only pretend to be images, header bombs in every format, and
issue 13's strips (tiny on the wire, huge in pixels: the mask's memory, the decode deadline)."""

from __future__ import annotations

from typing import Any

from tests.reliability.corpus import formats, strips
from tests.reliability.corpus import images as img
from tests.reliability.hostile_inputs import CLASSIFIER, JPEG, PNG, SEGMENTER, Case, image, parts

GIF = {"content-type": "image/gif"}
BMP = {"content-type": "image/bmp"}
TIFF = {"content-type": "image/tiff"}
WEBP = {"content-type": "image/webp"}
BOMB_SIDE = 65_000  # 4.2 G pixels declared
STRIP = 40_000_000  # pixels of issue 13's strips: exactly the default pixel limit


def mask_of(width: int, height: int) -> Any:
    def check(body: dict[str, Any]) -> None:
        mask = body["results"][0]["mask"]
        assert (mask["width"], mask["height"]) == (width, height), mask
        assert abs(sum(mask["class_fractions"].values()) - 1) < 1e-6, mask

    return check


def tall_strips(count: int) -> Any:
    return lambda: [("file", (f"{i}.png", strips.bilevel_strip(1, STRIP), "image/png"))
                    for i in range(count)]  # fmt: skip


# A table, one case a line or two: kept as written.
# fmt: off
IMAGE_CASES: list[Case] = [
    # --- issue 13 -------------------------------------------------------------------------------
    image("segmenter: 1-bit 40,000,000x1 PNG (5 kB)", lambda: strips.bilevel_strip(STRIP, 1),
          params={"model": SEGMENTER}, check=mask_of(STRIP, 1)),
    image("segmenter: 1-bit 100,000x1 PNG", lambda: strips.bilevel_strip(100_000, 1),
          params={"model": SEGMENTER}, check=mask_of(100_000, 1)),
    image("segmenter: 1-bit 1x100,000 PNG", lambda: strips.bilevel_strip(1, 100_000),
          params={"model": SEGMENTER}, check=mask_of(1, 100_000)),
    Case("eight 1x40,000,000 PNGs, timeout_ms=1000", 504, "deadline",
         params={"model": CLASSIFIER, "timeout_ms": 1000}, files=tall_strips(8), settle=True),
    # --- the corners of each format: 200 ---------------------------------------------------------
    image("progressive JPEG", formats.jpeg_progressive, headers=JPEG),
    image("greyscale JPEG", formats.jpeg_grey, headers=JPEG),
    image("JPEG with an ICC profile", formats.jpeg_icc, headers=JPEG),
    image("JPEG with a garbage EXIF block", formats.jpeg_broken_exif, headers=JPEG),
    image("JPEG EXIF orientation 3", lambda: formats.jpeg_oriented(3), headers=JPEG),
    image("JPEG EXIF orientation 8 to the segmenter", lambda: formats.jpeg_oriented(8),
          headers=JPEG, params={"model": SEGMENTER}, check=mask_of(32, 48)),
    image("JPEG EXIF orientation 9 (invalid)", lambda: formats.jpeg_oriented(9), headers=JPEG),
    image("JPEG EXIF orientation 0 (invalid)", lambda: formats.jpeg_oriented(0), headers=JPEG),
    image("interlaced (Adam7) PNG", formats.png_interlaced),
    image("grey + alpha PNG", formats.png_grey_alpha),
    image("palette PNG with a transparent entry", formats.png_palette_transparent),
    image("1-bit PNG", formats.png_bilevel),
    image("PNG with garbage after IEND", formats.png_trailing_garbage),
    image("2x2 image", formats.two_by_two),
    image("10x20000 image", formats.tall),
    image("10x20000 image to the segmenter", formats.tall, params={"model": SEGMENTER},
          check=mask_of(10, 20_000)),
    image("single-frame GIF", formats.gif_single, headers=GIF),
    image("GIF with a transparent colour", formats.gif_transparent, headers=GIF),
    image("1-bit BMP", formats.bmp_bilevel, headers=BMP),
    image("32-bit BMP", formats.bmp_rgba, headers=BMP),
    image("LZW TIFF", formats.tiff_lzw, headers=TIFF),
    image("16-bit grey TIFF", formats.tiff_grey16, headers=TIFF),
    image("32-bit float TIFF", formats.tiff_float, headers=TIFF),
    image("CMYK TIFF", formats.tiff_cmyk, headers=TIFF),
    image("lossless WebP", formats.webp_lossless, headers=WEBP),
    image("WebP with alpha", formats.webp_alpha, headers=WEBP),
    image("animated WebP", formats.webp_animated, headers=WEBP),
    # --- not (whole) images: 400 -----------------------------------------------------------------
    Case("PNG with a broken IHDR checksum", 400, "could not identify", headers=PNG,
         content=formats.png_bad_ihdr_crc),
    Case("PNG declaring 0x0", 400, "could not identify", headers=PNG,
         content=formats.png_zero_size),
    Case("JPEG that is only its SOI marker", 400, "could not identify", headers=JPEG,
         content=formats.jpeg_soi_only),
    Case("gzip of a PNG labelled image/png", 400, "could not identify", headers=PNG,
         content=formats.gzip_bytes),
    Case("ZIP labelled image/png", 400, "could not identify", headers=PNG,
         content=formats.zip_bytes),
    Case("PDF labelled image/png", 400, "could not identify", headers=PNG,
         content=lambda: formats.PDF),
    Case("ICO labelled image/png (not a supported format)", 400, "could not identify",
         headers=PNG, content=formats.ico),
    Case("1 kB of random bytes as octet-stream", 400, "could not identify",
         headers={"content-type": "application/octet-stream"}, content=lambda: formats.RANDOM),
    # --- header bombs in every format: 413 before decoding ----------------------------------------
    Case("JPEG declaring 65000x65000", 413, "pixels", headers=JPEG,
         content=lambda: strips.jpeg_declaring(BOMB_SIDE, BOMB_SIDE)),
    Case("GIF declaring 65000x65000", 413, "pixels", headers=GIF,
         content=lambda: strips.gif_declaring(BOMB_SIDE, BOMB_SIDE)),
    Case("BMP declaring 65000x65000", 413, "pixels", headers=BMP,
         content=lambda: strips.bmp_declaring(BOMB_SIDE, BOMB_SIDE)),
    Case("WebP declaring 65000x65000", 413, "pixels", headers=WEBP,
         content=lambda: strips.webp_declaring(BOMB_SIDE, BOMB_SIDE)),
    Case("1-bit PNG of 40,000,001x1 (one pixel over)", 413, "pixels", headers=PNG,
         content=lambda: strips.bilevel_strip(STRIP + 1, 1)),
    Case("multipart: a bomb after a good image", 413, "image 2 of 2",
         files=parts(("a.png", img.png(), "image/png"), ("b.png", img.png_bomb(), "image/png"))),
]
# fmt: on
