"""The demo page: ``GET /`` serves one static HTML file (no build step, no CDN) that calls the
public API; ``GET /demo/sample`` hands it a generated shapes image to try; ``/favicon.ico`` is
a small SVG icon (the page, /docs and a browser's own request for it all get the same one)."""

from __future__ import annotations

import io
from functools import cache
from importlib import resources

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from PIL import Image

from models.demo.shapes import generate_batch

router = APIRouter(include_in_schema=False)

FAVICON_PATH = "/favicon.ico"
#: A day: the icon changes only with a release.
FAVICON_CACHE = "public, max-age=86400"


@cache
def static_text(name: str) -> str:
    return resources.files("service").joinpath(f"static/{name}").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
async def index() -> str:
    return static_text("index.html")


@router.get(FAVICON_PATH)
async def favicon() -> Response:
    return Response(
        static_text("favicon.svg"),
        media_type="image/svg+xml",
        headers={"cache-control": FAVICON_CACHE},
    )


@router.get("/demo/sample")
async def sample(
    seed: int = Query(0, ge=0, le=2**31 - 1),
    size: int = Query(256, ge=32, le=1024),
    shapes: int = Query(1, ge=1, le=4),
) -> Response:
    """A generated image of coloured shapes as PNG (the demo models' kind of input)."""
    images, _, _ = generate_batch(seed, 1, size, shapes)
    buffer = io.BytesIO()
    Image.fromarray(images[0]).save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png")
