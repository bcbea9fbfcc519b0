"""/docs (Swagger UI) and /redoc with every asset served by the service itself, so they work on
a network without internet access (FastAPI's own pages load theirs from a public CDN).

The assets come from the ``fastapi-offline`` package, which ships Swagger UI 5 and ReDoc 2 as
released (``swagger-ui-bundle`` ships Swagger UI 4, which cannot read the OpenAPI 3.1 that
FastAPI writes). Only its files are used; the pages are FastAPI's ``get_swagger_ui_html`` and
``get_redoc_html`` with local URLs. ``ATTNSERVE_DOCS=false`` leaves all of it out, with
/openapi.json (see :func:`service.http.app.create_app`).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from service.http.page import FAVICON_PATH

ASSETS_PATH = "/docs-assets"
ASSETS_PACKAGE = ("fastapi_offline", "static")


def install_docs(app: FastAPI) -> None:
    """Mount the assets and add the two pages (left out of the schema, like FastAPI's own)."""
    app.mount(ASSETS_PATH, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")
    title = app.title

    def root(request: Request) -> str:
        """The prefix of every URL a page names, behind a proxy that sets ``root_path``."""
        return request.scope.get("root_path", "").rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        prefix = root(request)
        return get_swagger_ui_html(
            openapi_url=f"{prefix}{app.openapi_url}",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{prefix}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{prefix}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{prefix}{FAVICON_PATH}",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        prefix = root(request)
        return get_redoc_html(
            openapi_url=f"{prefix}{app.openapi_url}",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{prefix}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{prefix}{FAVICON_PATH}",
            with_google_fonts=False,
        )
