"""The hostile-input corpus: each case is one HTTP request, the status it must get and a piece
of the error message a client must see (valid-but-odd images must get 200).

Bodies are built at test time from :mod:`tests.reliability.corpus`. Requests that need a raw
socket (a body over the upload limit) live in the test module, not here.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

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

    def send(self, client: httpx.Client) -> httpx.Response:
        return client.post(
            self.path, params=self.params, headers=self.headers,
            content=self.content() if self.content else None,
            files=self.files() if self.files else None, data=self.data,
        )  # fmt: skip


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


def two_results(body: dict[str, Any]) -> None:
    assert len(body["results"]) == 2, body


def v2(name: str, status: int, message: str, document: Any, path: str = V2_INFER,
       headers: dict | None = None, tail: bytes = b"") -> Case:  # fmt: skip
    """A v2 infer request: a JSON document (or raw text), optionally followed by binary data
    with its Inference-Header-Content-Length."""
    head = document if isinstance(document, bytes) else json.dumps(document).encode()
    headers = dict(headers or {"content-type": "application/json"})
    if tail:
        headers["inference-header-content-length"] = str(len(head))
    return Case(name, status, message, path=path, params={}, headers=headers,
                content=lambda: head + tail)  # fmt: skip


def fp32_input(shape: list[int], **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": shape, **extra}]}


def bytes_tensor(*images: bytes) -> bytes:
    """Triton's BYTES serialisation: per element a 4-byte little-endian length, then the bytes."""
    return b"".join(struct.pack("<I", len(item)) + item for item in images)


def v2_images(name: str, status: int, message: str, *images: bytes, **document: Any) -> Case:
    """A v2 infer request with encoded images as one binary BYTES input."""
    tail = bytes_tensor(*images)
    tensor = {"name": "image", "datatype": "BYTES", "shape": [len(images)],
              "parameters": {"binary_data_size": len(tail)}}  # fmt: skip
    return v2(name, status, message, {"inputs": [tensor], **document}, tail=tail)


FULL = [1, 3, 64, 64]
INF_TENSOR = np.full(FULL, np.inf, dtype="<f4").tobytes()
BYTES_ELEMENT = struct.pack("<I", 10) + b"0123456789"


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
    Case("multipart with two images", 200, "", check=two_results,
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
    # --- malformed v2 -------------------------------------------------------------------
    v2("v2 shape vs data length", 400, "'data' has 5 elements", fp32_input(FULL, data=[0.0] * 5)),
    v2("v2 unknown datatype", 400, "unknown datatype 'FP33'",
       {"inputs": [{"name": "input", "datatype": "FP33", "shape": [1], "data": [1.0]}]}),
    v2("v2 INT32 where FP32 is needed", 400, "must be FP32",
       {"inputs": [{"name": "input", "datatype": "INT32", "shape": FULL,
                    "data": [0] * (3 * 64 * 64)}]}),
    v2("v2 wrong spatial size", 400, "must be FP32 [N, 3, 64, 64]",
       fp32_input([1, 3, 8, 8], data=[0.0] * 192)),
    v2("v2 NaN in JSON", 400, "NaN", b'{"inputs":[{"name":"input","datatype":"FP32",'
       b'"shape":[1],"data":[NaN]}]}'),
    v2("v2 Infinity in JSON", 400, "Infinity", b'{"inputs":[{"name":"input","datatype":"FP32",'
       b'"shape":[1],"data":[Infinity]}]}'),
    v2("v2 Inf in binary FP32", 400, "NaN or Inf",
       fp32_input(FULL, parameters={"binary_data_size": len(INF_TENSOR)}), tail=INF_TENSOR),
    v2("v2 missing inputs", 400, "non-empty 'inputs'", {"outputs": [{"name": "logits"}]}),
    v2("v2 binary_data_size over the data", 400, "binary_data_size is 999",
       fp32_input(FULL, parameters={"binary_data_size": 999}), tail=b"\0" * 16),
    v2("v2 binary data left over", 400, "account for 16",
       fp32_input([1, 2, 2], parameters={"binary_data_size": 16}), tail=b"\0" * 32),
    v2("v2 binary size vs shape", 400, "needs 49152",
       fp32_input(FULL, parameters={"binary_data_size": 16}), tail=b"\0" * 16),
    v2("v2 BYTES length prefix lies", 400, "declares 10 bytes",
       {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                    "parameters": {"binary_data_size": 8}}]}, tail=BYTES_ELEMENT[:8]),
    v2("v2 header length over the body", 400, "Inference-Header-Content-Length is 5000",
       b'{"inputs": []}', headers={"inference-header-content-length": "5000"}),
    v2("v2 body not JSON", 400, "not valid JSON", b"\x89PNG not json"),
    v2("v2 JSON nested 100000 deep", 400, "not valid JSON", b"[" * 100_000),
    v2_images("v2 truncated PNG as BYTES", 400, "could not decode", img.truncated(img.png())),
    v2_images("v2 unknown output", 400, "unknown output", img.png(), outputs=[{"name": "nope"}]),
    v2("v2 batch over the request limit", 400, "over the 64-item request limit",
       {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [100], "data": ["x"] * 100}]}),
    v2("v2 unknown model", 404, "unknown model 'nope'", {"inputs": []},
       path="/v2/models/nope/infer"),
    v2_images("v2 PNG and JPEG as BYTES", 200, "", img.png(), img.jpeg()),
]
# fmt: on
