"""/docs and /redoc load every asset from the service itself (no CDN), and
``ATTNSERVE_DOCS=false`` turns them off together with /openapi.json."""

import re
from pathlib import Path

from tests.service.server import Server, running_server

DOC_PAGES = ("/docs", "/redoc")


def asset_urls(html: str) -> list[str]:
    """Every script, stylesheet and icon a page loads."""
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


def test_docs_pages_load_their_assets_from_the_service(demo_server: Server) -> None:
    with demo_server.client() as client:
        for path in DOC_PAGES:
            page = client.get(path)
            assert page.status_code == 200, path
            urls = asset_urls(page.text)
            assert urls and all(url.startswith("/") for url in urls), (path, urls)
            for url in urls:
                asset = client.get(url)
                assert asset.status_code == 200, url
                assert len(asset.content) > 100, url
        assert "openapi" in client.get("/openapi.json").json()


def test_asset_urls_finds_a_cdn() -> None:
    html = '<script src="https://cdn.example/x.js"></script><link href="/a.css">'
    urls = asset_urls(html)
    assert urls == ["https://cdn.example/x.js", "/a.css"]
    assert not all(url.startswith("/") for url in urls)


def test_docs_off_removes_docs_redoc_and_the_spec(fault_repo: Path, tmp_path: Path) -> None:
    """On the fault repository's models, waiting for the process only: no model is needed."""
    env = {"ATTNSERVE_DOCS": "false"}
    with running_server(fault_repo, tmp_path, env, wait="alive") as server, server.client() as c:
        for path in (*DOC_PAGES, "/openapi.json", "/docs-assets/swagger-ui.css"):
            assert c.get(path).status_code == 404, path
        assert c.get("/healthz").status_code == 200
