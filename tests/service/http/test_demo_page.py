"""The demo page in a real browser (Debian's chromium driven by playwright): upload an image,
read the predicted label from the page, toggle an attention map, take a screenshot."""

import os
import shutil
from pathlib import Path

import pytest

from models.demo.shapes import SHAPE_CLASSES, generate_batch
from tests.service.images import encode
from tests.service.server import Server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing although CI installs it (make tools)")
        pytest.skip(f"{CHROMIUM} is not installed: apt-get install chromium")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_upload_predict_toggle_a_map(browser, demo_server: Server, tmp_path: Path) -> None:
    images, labels, _ = generate_batch(4242, 8, 64)
    index = next(i for i, label in enumerate(labels) if SHAPE_CLASSES[label] == "star")
    upload = tmp_path / "star.png"
    upload.write_bytes(encode(images[index]))

    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(demo_server.url + "/")
    page.wait_for_selector("#model option[value='shapes-classifier']", state="attached")
    page.select_option("#model", "shapes-classifier")
    page.set_input_files("#file", str(upload))
    first = page.wait_for_selector("#predictions li.prediction")
    assert first.get_attribute("data-label") == "star"
    assert "total_ms" in page.inner_text("#timings")

    boxes = page.query_selector_all("#maps input[name='map']")
    assert len(boxes) >= 1
    boxes[-1].check()
    painted = page.wait_for_function(
        """() => {
            const c = document.getElementById('overlay');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
            return false;
        }"""
    )
    assert painted.json_value() is True
    page.fill("#opacity", "45")
    assert page.eval_on_selector("#overlay", "c => c.style.opacity") == "0.45"
    shot = tmp_path / "demo-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("ATTNSERVE_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["ATTNSERVE_SCREENSHOT_DIR"]) / shot.name)
    page.close()


def test_sample_endpoint_serves_a_generated_png(demo_server: Server) -> None:
    with demo_server.client() as client:
        response = client.get("/demo/sample", params={"seed": 3, "size": 96})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
