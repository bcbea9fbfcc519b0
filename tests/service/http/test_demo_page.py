"""The demo page and /docs in a real browser (Debian's chromium driven by playwright), with
every request that leaves the server under test refused: upload an image, read the predicted
label, draw a heatmap with its colour scale and a per-channel map as bars, switch model on the
same image, load the favicon, and send an image from /docs "Try it out"."""

import json
import os
import shutil
from collections.abc import Iterator
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
CLASSIFIER, SEGMENTER = "shapes-classifier", "shapes-segmenter"
UPLOAD_SIDE = 64  # a generated sample is 256 px: the image canvas tells them apart

PAINTED = """(id) => {
    const c = document.getElementById(id);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
    return false;
}"""


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


@pytest.fixture
def page(browser, demo_server: Server) -> Iterator:
    """A page whose requests reach the server under test only: anything else (a CDN) is
    aborted and recorded, and the test fails if there was any."""
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    outside: list[str] = []

    def only_the_server(route) -> None:
        url = route.request.url
        if url.startswith(demo_server.url) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", only_the_server)
    yield page
    page.close()
    assert not outside, f"the page reached outside the service: {outside}"


@pytest.fixture(scope="module")
def star_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images, labels, _ = generate_batch(4242, 8, UPLOAD_SIDE)
    index = next(i for i, label in enumerate(labels) if SHAPE_CLASSES[label] == "star")
    path = tmp_path_factory.mktemp("uploads") / "star.png"
    path.write_bytes(encode(images[index]))
    return path


def upload(page, server: Server, image: Path, model: str) -> None:
    page.goto(server.url + "/")
    page.wait_for_selector(f"#model option[value='{model}']", state="attached")
    page.select_option("#model", model)
    page.set_input_files("#file", str(image))
    page.wait_for_function(f"() => document.getElementById('status').dataset.model === '{model}'")


def choose_map(page, suffix: str) -> str:
    box = page.locator(f"#maps input[name='map'][value$='{suffix}']").first
    box.check()
    return box.get_attribute("value")


def api_maps(server: Server, image: Path, model: str) -> dict:
    with server.client() as client:
        response = client.post(
            "/predict",
            params={"model": model, "attention": "true"},
            content=image.read_bytes(),
            headers={"content-type": "image/png"},
        )
    assert response.status_code == 200, response.text
    return response.json()["results"][0]["attention"]


def scale_of(page) -> tuple[float, float]:
    page.wait_for_selector("#scale:not([hidden])")
    values = page.eval_on_selector("#scale", "s => [s.dataset.min, s.dataset.max]")
    return float(values[0]), float(values[1])


def test_upload_predict_heatmap_with_its_colour_scale(
    page, demo_server: Server, star_png: Path, tmp_path: Path
) -> None:
    upload(page, demo_server, star_png, CLASSIFIER)
    first = page.wait_for_selector("#predictions li.prediction")
    assert first.get_attribute("data-label") == "star"
    assert "total_ms" in page.inner_text("#timings")

    name = choose_map(page, ".spatial")
    assert page.wait_for_function(PAINTED, arg="overlay").json_value() is True
    expected = api_maps(demo_server, star_png, CLASSIFIER)[name]
    low, high = scale_of(page)
    assert low == pytest.approx(expected["min"], rel=1e-4, abs=1e-6)
    assert high == pytest.approx(expected["max"], rel=1e-4, abs=1e-6)
    assert page.inner_text("#scale-min") and page.inner_text("#scale-max")
    assert page.evaluate(PAINTED, "scale-ramp") is True
    assert page.is_hidden("#bars")

    page.fill("#opacity", "45")
    assert page.eval_on_selector("#overlay", "c => c.style.opacity") == "0.45"
    shot = tmp_path / "demo-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("ATTNSERVE_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["ATTNSERVE_SCREENSHOT_DIR"]) / shot.name)


def test_a_channel_map_is_a_bar_chart_not_stretched_over_the_image(
    page, demo_server: Server, star_png: Path
) -> None:
    upload(page, demo_server, star_png, CLASSIFIER)
    name = choose_map(page, ".channel")
    expected = api_maps(demo_server, star_png, CLASSIFIER)[name]
    assert len(expected["shape"]) == 1  # (C,): no positions to stretch
    page.wait_for_selector("#bars:not([hidden])")
    assert page.inner_text("#chart-caption").startswith(f"{name}: {expected['shape'][0]} channel")
    assert page.wait_for_function(PAINTED, arg="chart").json_value() is True
    assert page.evaluate(PAINTED, "overlay") is False
    low, high = scale_of(page)
    assert (low, high) == (pytest.approx(expected["min"]), pytest.approx(expected["max"]))
    choose_map(page, ".spatial")  # back to a heatmap: the chart goes, the overlay comes
    assert page.wait_for_function(PAINTED, arg="overlay").json_value() is True
    assert page.is_hidden("#bars")


def test_switching_model_reruns_the_current_image(
    page, demo_server: Server, star_png: Path
) -> None:
    upload(page, demo_server, star_png, CLASSIFIER)
    with page.expect_request(lambda r: "/predict" in r.url and r.method == "POST") as sent:
        page.select_option("#model", SEGMENTER)
    assert sent.value.post_data_buffer == star_png.read_bytes()
    page.wait_for_function(f"() => document.getElementById('status').dataset.model === "
                           f"'{SEGMENTER}'")  # fmt: skip
    assert page.eval_on_selector("#image", "c => [c.width, c.height]") == [UPLOAD_SIDE] * 2
    assert page.wait_for_function(PAINTED, arg="overlay").json_value() is True  # its mask
    assert page.query_selector("#predictions li") is None
    assert page.input_value("#file").endswith("star.png")


def test_the_favicon_is_served_and_linked(browser, demo_server: Server) -> None:
    page = browser.new_page()  # unrouted: playwright's routing fails a page's favicon URL
    page.goto(demo_server.url + "/")
    href = page.eval_on_selector("link[rel='icon']", "l => l.href")
    assert href == demo_server.url + "/favicon.ico"
    response = page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"] == "image/svg+xml"
    width = page.evaluate("""(url) => new Promise((ok, fail) => {
        const img = new Image(); img.onload = () => ok(img.naturalWidth);
        img.onerror = fail; img.src = url; })""", href)  # fmt: skip
    assert width > 0
    page.close()


def test_docs_try_it_out_sends_an_image_and_gets_a_prediction(
    page, demo_server: Server, star_png: Path
) -> None:
    page.goto(demo_server.url + "/docs")
    operation = page.locator("#operations-inference-predict_predict_post")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator(".opblock-section-request-body select").select_option("image/png")
    operation.locator(".opblock-section-request-body input[type='file']").set_input_files(
        str(star_png)
    )
    with page.expect_response(lambda r: "/predict" in r.url) as answered:
        operation.locator("button.execute").click()
    assert answered.value.status == 200
    shown = operation.locator(".live-responses-table .response").first
    assert shown.locator(".response-col_status").inner_text().strip() == "200"
    body = json.loads(shown.locator(".response-col_description pre").first.inner_text())
    assert body["results"][0]["predictions"][0]["label"] == "star"


def test_sample_endpoint_serves_a_generated_png(demo_server: Server) -> None:
    with demo_server.client() as client:
        response = client.get("/demo/sample", params={"seed": 3, "size": 96})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
