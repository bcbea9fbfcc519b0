"""The hostile-input corpus: each case is one HTTP request, the status it must get and a piece
of the error message a client must see (valid-but-odd images must get 200).

Bodies are built at test time from :mod:`tests.reliability.corpus`. More rows live in
:mod:`.hostile_images`, :mod:`.hostile_requests` and :mod:`.hostile_v2`; requests that need a
raw socket (broken framing, oversized heads, a body over the upload limit) in the test module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.reliability.conftest import API_KEY
from tests.reliability.corpus import images as img

CLASSIFIER, SEGMENTER = "shapes-classifier", "shapes-segmenter"
V2_INFER = f"/v2/models/{CLASSIFIER}/infer"
PNG = {"content-type": "image/png"}
JPEG = {"content-type": "image/jpeg"}
AUTH = {"authorization": f"Bearer {API_KEY}"}


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    message: str  # a substring of the error message ("" for a 200)
    path: str = "/predict"
    params: dict[str, Any] = field(default_factory=lambda: {"model": CLASSIFIER})
    headers: dict[str, str] = field(default_factory=dict)
    content: Callable[[], bytes] | None = None
    files: Callable[[], list[tuple[str, tuple[str, bytes, str]]]] | None = None
    data: dict[str, str] | None = None
    check: Callable[[dict[str, Any]], None] | None = None  # more checks on a 200's JSON
    method: str = "POST"
    settle: bool = False  # leaves decodes running: wait for the decode backlog to empty after

    def build(self, client: httpx.Client) -> httpx.Request:
        """The request, built before it is sent (a test times only the exchange)."""
        return client.build_request(
            self.method, self.path, params=self.params, headers=self.headers,
            content=self.content() if self.content else None,
            files=self.files() if self.files else None, data=self.data,
        )  # fmt: skip

    def deadline_s(self, default_s: float) -> float:
        """The request's own deadline: its ``timeout_ms`` when it sets a usable one."""
        try:
            timeout_s = float(self.params.get("timeout_ms", "")) / 1000
        except ValueError:
            return default_s
        return min(timeout_s, default_s) if timeout_s > 0 else default_s


def error_message(response: httpx.Response) -> str:
    """The message of either error shape: ``{"error": {"message"}}`` or v2's ``{"error": msg}``."""
    error = response.json().get("error", "")
    return error.get("message", "") if isinstance(error, dict) else str(error)


def image(name: str, content: Callable[[], bytes], headers: dict = PNG, **kwargs: Any) -> Case:
    """A valid-but-odd image: 200 with one result."""
    return Case(name, 200, "", content=content, headers=headers, **kwargs)


def upright_32x64(body: dict[str, Any]) -> None:
    mask = body["results"][0]["mask"]
    assert (mask["width"], mask["height"]) == (32, 64), mask


def results(count: int) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        assert len(body["results"]) == count, body

    return check


def parts(*items: tuple[str, bytes, str], field_name: str = "file") -> Callable[[], list]:
    return lambda: [(field_name, item) for item in items]


# A table, one case a line or two: kept as written.
# fmt: off
CASES: list[Case] = [
    # --- not images, broken images, bombs ---------------------------------------------------
    Case("empty body", 400, "empty body", headers=PNG, content=lambda: b""),
    Case("text as text/plain", 415, "unsupported media type 'text/plain'",
         headers={"content-type": "text/plain"}, content=lambda: img.TEXT),
    Case("text labelled image/png", 400, "could not identify", headers=PNG,
         content=lambda: img.TEXT),
    Case("HTML as text/html", 415, "unsupported media type", headers={"content-type": "text/html"},
         content=lambda: img.HTML),
    Case("HTML labelled image/jpeg", 400, "could not identify", headers=JPEG,
         content=lambda: img.HTML),
    Case("truncated JPEG", 400, "could not decode", headers=JPEG,
         content=lambda: img.truncated(img.jpeg())),
    Case("truncated PNG", 400, "could not decode", headers=PNG,
         content=lambda: img.truncated(img.png())),
    Case("JPEG with a corrupt Huffman table", 400, "could not decode", headers=JPEG,
         content=img.corrupt_huffman_jpeg),
    Case("PNG bomb 65535x65535 in 69 bytes", 413, "pixels", headers=PNG, content=img.png_bomb),
    Case("SVG as image/svg+xml", 415, "image/svg+xml", headers={"content-type": "image/svg+xml"},
         content=lambda: img.SVG),
    Case("SVG labelled image/png", 400, "could not identify", headers=PNG,
         content=lambda: img.SVG),
    # --- valid but odd images: 200 --------------------------------------------------------------
    image("16-bit grey PNG", img.png_16bit),
    image("palette PNG", img.png_palette),
    image("RGBA PNG", img.png_rgba),
    image("greyscale PNG", img.png_gray),
    image("CMYK JPEG", img.jpeg_cmyk, headers=JPEG),
    image("EXIF-rotated JPEG (mask upright)", img.jpeg_exif_rotated, headers=JPEG,
          params={"model": SEGMENTER}, check=upright_32x64),
    image("animated GIF", img.gif_animated, headers={"content-type": "image/gif"}),
    image("multi-frame TIFF", img.tiff_multiframe, headers={"content-type": "image/tiff"}),
    image("WebP", img.webp, headers={"content-type": "image/webp"}),
    image("BMP", img.bmp, headers={"content-type": "image/bmp"}),
    image("1x1 image", img.one_pixel),
    image("20000x10 image", img.very_wide),
    image("1x1 image to the segmenter", img.one_pixel, params={"model": SEGMENTER}),
    # --- Content-Type ----------------------------------------------------------------------------
    image("PNG labelled image/jpeg (sniffed)", img.png, headers=JPEG),
    image("content type with parameters and capitals", img.png,
          headers={"content-type": "IMAGE/PNG; charset=binary"}),
    Case("missing Content-Type", 415, "no content type", content=img.png),
    image("application/octet-stream (sniffed)", img.png,
          headers={"content-type": "application/octet-stream"}),
    # --- multipart ----------------------------------------------------------------------
    Case("multipart with no file part", 422, "no 'file' part", data={"other": "x"},
         files=parts(("a.txt", b"x", "text/plain"), field_name="other")),
    Case("multipart with 100 files", 413, "files per request",
         files=lambda: [("file", (f"{i}.png", img.one_pixel(), "image/png")) for i in range(100)]),
    Case("multipart with a text/plain file part", 415, "text/plain",
         files=parts(("notes.txt", img.TEXT, "text/plain"))),
    Case("multipart 'file' as a text field", 422, "must be files", data={"file": "not a file"},
         files=parts(("x.png", img.png(), "image/png"), field_name="other")),
    Case("multipart with a 1 kB file name", 200, "",
         files=parts(("n" * 1000 + ".png", img.png(), "image/png"))),
    Case("multipart with a 100 kB file name", 400, "malformed multipart body",
         files=parts(("n" * 100_000 + ".png", img.png(), "image/png"))),
    Case("multipart: good image then truncated one", 400, "image 2 of 2",
         files=parts(("a.png", img.png(), "image/png"), ("b.png", img.truncated(img.png()),
                                                           "image/png"))),
    Case("multipart with two images", 200, "", check=results(2),
         files=parts(("a.png", img.png(), "image/png"), ("b.jpg", img.jpeg(), "image/jpeg"))),
    Case("multipart without a boundary", 400, "multipart",
         headers={"content-type": "multipart/form-data"}, content=lambda: b"--x\r\n\r\nabc"),
    # --- model names, versions, parameters -------------------------------------------------------
    Case("unknown model", 404, "unknown model 'no-such-model'", headers=PNG, content=img.png,
         params={"model": "no-such-model"}),
    Case("model '../shapes-classifier'", 404, "unknown model", headers=PNG, content=img.png,
         params={"model": "../shapes-classifier"}),
    Case("model '..%2Fshapes-classifier'", 404, "unknown model", headers=PNG, content=img.png,
         params={"model": "..%2Fshapes-classifier"}),
    Case("model '/etc/passwd'", 404, "unknown model", headers=PNG, content=img.png,
         params={"model": "/etc/passwd"}),
    Case("v2 path ..%2F traversal", 404, "Not Found", path=f"/v2/models/..%2F{CLASSIFIER}/infer",
         params={}, headers={"content-type": "application/json"}, content=lambda: b"{}"),
    Case("v2 model name %2E%2E", 404, "unknown model '..'", path="/v2/models/%2E%2E/infer",
         params={}, headers={"content-type": "application/json"}, content=lambda: b"{}"),
    Case("management load %2E%2E", 422, "invalid model name", path="/models/%2E%2E/load",
         params={}, headers=AUTH),
    Case("management load ..%2F..%2Fetc", 404, "Not Found", path="/models/..%2F..%2Fetc/load",
         params={}, headers=AUTH),
    Case("management load '.hidden'", 422, "invalid model name", path="/models/.hidden/load",
         params={}, headers=AUTH),
    Case("top_k=-1", 422, "top_k", headers=PNG, content=img.png,
         params={"model": CLASSIFIER, "top_k": -1}),
    Case("top_k=10**12", 422, "top_k", headers=PNG, content=img.png,
         params={"model": CLASSIFIER, "top_k": 10**12}),
    Case("top_k=abc", 422, "top_k", headers=PNG, content=img.png,
         params={"model": CLASSIFIER, "top_k": "abc"}),
    image("top_k=1000 (more than the labels)", img.png,
          params={"model": CLASSIFIER, "top_k": 1000}),
    Case("unknown attention map", 422, "unknown attention map", headers=PNG, content=img.png,
         params={"model": CLASSIFIER, "attention": "backbone.nope"}),
    Case("version=0", 422, "version", headers=PNG, content=img.png,
         params={"model": CLASSIFIER, "version": 0}),
    Case("version=99", 404, "no version 99", headers=PNG, content=img.png,
         params={"model": CLASSIFIER, "version": 99}),
    Case("timeout_ms=-5", 422, "timeout_ms", headers=PNG, content=img.png,
         params={"model": CLASSIFIER, "timeout_ms": -5}),
    Case("mask=jpeg", 422, "mask", headers=PNG, content=img.png,
         params={"model": SEGMENTER, "mask": "jpeg"}),
]
# fmt: on
