"""Requests for the hostile corpus beyond the first table: content types, multipart bodies
that bend the format, query parameters at their extremes, methods, paths and the management
key. Every one gets a clear 4xx, or a 200 where the request is odd but valid."""

from __future__ import annotations

from typing import Any

from tests.reliability.conftest import API_KEY
from tests.reliability.corpus import images as img
from tests.reliability.hostile_inputs import (
    AUTH,
    CLASSIFIER,
    PNG,
    SEGMENTER,
    Case,
    image,
    parts,
    results,
)

BOUNDARY = "hostile-boundary"
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def multipart(*sections: bytes, closed: bool = True) -> bytes:
    """A multipart body from raw part sections (headers, blank line, content)."""
    body = b"".join(b"--" + BOUNDARY.encode() + b"\r\n" + section + b"\r\n" for section in sections)
    return body + (b"--" + BOUNDARY.encode() + b"--\r\n" if closed else b"")


def file_section(content: bytes, headers: bytes = b"Content-Type: image/png\r\n") -> bytes:
    disposition = b'Content-Disposition: form-data; name="file"; filename="a.png"\r\n'
    return disposition + headers + b"\r\n" + content


def predict(name: str, status: int, message: str, **params: Any) -> Case:
    """/predict of a good PNG with these query parameters."""
    return Case(name, status, message, headers=PNG, content=img.png,
                params={"model": CLASSIFIER, **params})  # fmt: skip


def content_type(name: str, status: int, message: str, value: str) -> Case:
    """A good PNG declared as ``value`` (sent as Latin-1 bytes, as a raw client may)."""
    headers: Any = {"content-type": value.encode("latin-1")}
    return Case(name, status, message, headers=headers, content=img.png)


def management(name: str, status: int, message: str, headers: dict[str, str],
               path: str = f"/models/{CLASSIFIER}/reload", **params: Any) -> Case:  # fmt: skip
    return Case(name, status, message, path=path, params=params, headers=headers)


def call(name: str, status: int, message: str, method: str, path: str) -> Case:
    return Case(name, status, message, path=path, params={}, method=method)


# A table, one case a line or two: kept as written.
# fmt: off
REQUEST_CASES: list[Case] = [
    # --- Content-Type ---------------------------------------------------------------------------
    image("image/jpg (alias)", img.png, headers={"content-type": "image/jpg"}),
    image("image/x-png (alias)", img.png, headers={"content-type": "image/x-png"}),
    image("image/png with a boundary parameter", img.png,
          headers={"content-type": "image/png; boundary=x"}),
    content_type("two types in one header", 415, "unsupported media type", "image/png, image/jpeg"),
    content_type("application/json to /predict", 415, "application/json", "application/json"),
    content_type("multipart/mixed", 415, "multipart/mixed", "multipart/mixed; boundary=x"),
    content_type("form-urlencoded", 415, "x-www-form-urlencoded",
                 "application/x-www-form-urlencoded"),
    content_type("image/avif", 415, "image/avif", "image/avif"),
    content_type("image/heic", 415, "image/heic", "image/heic"),
    content_type("a 4 kB content type", 415, "unsupported media type", "image/" + "x" * 4000),
    content_type("a content type with Latin-1 bytes", 415, "unsupported media type",
                 "image/pn\xe9"),
    Case("text as octet-stream", 400, "could not identify",
         headers={"content-type": "application/octet-stream"}, content=lambda: img.TEXT),
    # --- multipart that bends the format --------------------------------------------------------
    Case("multipart boundary that never appears", 400, "malformed multipart body",
         headers={"content-type": "multipart/form-data; boundary=other"},
         content=lambda: multipart(file_section(img.png()))),
    Case("multipart without the closing boundary", 422, "no 'file' part",
         headers=MULTIPART, content=lambda: multipart(file_section(img.png()), closed=False)),
    Case("multipart part without Content-Disposition", 400, "malformed multipart body",
         headers=MULTIPART, content=lambda: multipart(b"Content-Type: image/png\r\n\r\nabc")),
    Case("multipart file part with no content type (sniffed)", 200, "",
         headers=MULTIPART, content=lambda: multipart(file_section(img.png(), headers=b""))),
    Case("multipart with an empty file", 400, "empty body",
         files=parts(("a.png", b"", "image/png"))),
    Case("multipart file named in Unicode", 200, "",
         files=parts(("\u56fe\u7247-\U0001f600.png", img.png(), "image/png"))),
    Case("multipart file part as image/svg+xml", 415, "image/svg+xml",
         files=parts(("a.svg", img.SVG, "image/svg+xml"))),
    Case("multipart with 17 text fields", 400, "malformed multipart body",
         data={f"field{i}": "x" for i in range(17)},
         files=parts(("a.png", img.png(), "image/png"))),
    Case("multipart with 64 files (the cap)", 200, "",
         files=lambda: [("file", (f"{i}.png", img.one_pixel(), "image/png")) for i in range(64)],
         check=results(64)),
    Case("multipart with 65 files", 413, "files per request",
         files=lambda: [("file", (f"{i}.png", img.one_pixel(), "image/png")) for i in range(65)]),
    Case("multipart with a 200-character boundary", 200, "",
         headers={"content-type": "multipart/form-data; boundary=" + "b" * 200},
         content=lambda: b"--" + b"b" * 200 + b"\r\n" + file_section(img.png()) + b"\r\n--"
         + b"b" * 200 + b"--\r\n"),
    # --- query parameters at their extremes ----------------------------------------------------
    predict("top_k=0", 422, "top_k", top_k=0),
    predict("top_k=1.5", 422, "top_k", top_k=1.5),
    predict("top_k=1e3", 422, "top_k", top_k="1e3"),
    predict("timeout_ms=0", 422, "timeout_ms", timeout_ms=0),
    predict("timeout_ms=nan", 422, "timeout_ms", timeout_ms="nan"),
    predict("timeout_ms=-inf", 422, "timeout_ms", timeout_ms="-inf"),
    predict("timeout_ms=abc", 422, "timeout_ms", timeout_ms="abc"),
    predict("timeout_ms=inf (the default deadline)", 200, "", timeout_ms="inf"),
    predict("timeout_ms=1e309 (overflows to inf)", 200, "", timeout_ms="1e309"),
    predict("timeout_ms=1e-300", 504, "deadline", timeout_ms="1e-300"),
    predict("version=-1", 422, "version", version=-1),
    predict("version=abc", 422, "version", version="abc"),
    predict("version=2**70", 404, "no version", version=2**70),
    predict("model='' (the default model)", 200, "", model=""),
    predict("model with Unicode", 404, "unknown model", model="mod\u00e8le-\U0001f600"),
    predict("model with a NUL byte", 404, "unknown model", model="shapes\x00classifier"),
    predict("model of 4 kB", 404, "unknown model", model="m" * 4000),
    predict("attention=true to the classifier", 200, "", attention="true"),
    predict("attention=',,,'", 200, "", attention=",,,"),
    predict("attention in Unicode", 422, "unknown attention map", attention="\u00e9t\u00e9"),
    predict("mask=none to the segmenter", 200, "", model=SEGMENTER, mask="none"),
    predict("an unknown query parameter", 200, "", colour="blue"),
    image("X-Request-ID of 4 kB (replaced)", img.png, headers={**PNG, "x-request-id": "r" * 4000}),
    # --- methods and paths ----------------------------------------------------------------------
    call("GET /predict", 405, "Method Not Allowed", "GET", "/predict"),
    call("PUT /predict", 405, "Method Not Allowed", "PUT", "/predict"),
    call("DELETE /v2/models/x/infer", 405, "Method Not Allowed", "DELETE",
         f"/v2/models/{CLASSIFIER}/infer"),
    call("PATCH /models", 405, "Method Not Allowed", "PATCH", "/models"),
    call("OPTIONS /predict without CORS", 405, "Method Not Allowed", "OPTIONS", "/predict"),
    call("POST /nope", 404, "Not Found", "POST", "/nope"),
    call("a 4 kB path", 404, "Not Found", "GET", "/" + "p" * 4000),
    call("a path with %00", 404, "Not Found", "GET", "/predict%00"),
    call("a path in Unicode", 404, "Not Found", "GET", "/\u00e9t\u00e9"),
    call("GET /v2/models/nope", 404, "unknown model 'nope'", "GET", "/v2/models/nope"),
    call("GET v2 metadata of version 99", 404, "no version 99", "GET",
         f"/v2/models/{CLASSIFIER}/versions/99"),
    call("GET v2 metadata of version 'abc'", 422, "version", "GET",
         f"/v2/models/{CLASSIFIER}/versions/abc"),
    # --- the management key ---------------------------------------------------------------------
    management("reload without a key", 401, "Bearer", {}),
    management("reload with a wrong key", 401, "Bearer", {"authorization": "Bearer nope"}),
    management("reload with the key as Basic", 401, "Bearer",
               {"authorization": f"Basic {API_KEY}"}),
    management("reload with a bearer and no key", 401, "Bearer", {"authorization": "Bearer"}),
    management("reload with a 4 kB key", 401, "Bearer", {"authorization": "Bearer " + "k" * 4000}),
    management("reload with the key in the query", 401, "Bearer", {}, api_key=API_KEY),
    management("reload with the key's prefix", 401, "Bearer",
               {"authorization": f"Bearer {API_KEY[:-1]}"}),
    management("unload an unknown model", 404, "not loaded", AUTH, path="/models/nope/unload"),
    management("load a model name with a space", 422, "invalid model name", AUTH,
               path="/models/a b/load"),
]
# fmt: on
