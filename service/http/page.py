"""The demo page: ``GET /`` serves one static HTML file (no build step, no CDN) that calls the
public API; ``GET /demo/sample`` hands it a generated shapes image to try."""

from __future__ import annotations

import io
from functools import cache
from importlib import resources

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from PIL import Image

from models.demo.shapes import generate_batch

router = APIRouter(include_in_schema=False)


@cache
def page() -> str:
    return resources.files("service").joinpath("static/index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
async def index() -> str:
    return page()


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
