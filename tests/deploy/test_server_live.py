"""The server for real: uvicorn on loopback under load, and the web page driven by a real browser."""

from __future__ import annotations

import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.deploy.conftest import live_server


@pytest.fixture(scope="module")
def base_url(tiny_package):
    from pixelforge.deploy.serve.server import ServerSettings, create_app

    with live_server(create_app(ServerSettings(str(tiny_package)))) as url:
        yield url


def test_load_200_requests_16_clients_zero_errors(base_url, sample_images):
    import httpx

    payloads = [p.read_bytes() for p in sample_images]
    latencies, failures = [], []

    def client_loop(worker: int, requests: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for i in range(requests):
                data = payloads[(worker + i) % len(payloads)]
                started = time.perf_counter()
                response = client.post("/v1/predict", files={"file": ("img.png", data, "image/png")})
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or not response.json()["predictions"][0]["label"]:
                    failures.append(response.status_code)

    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda w: client_loop(w, 200 // 16 + (w < 200 % 16)), range(16)))
    seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    p50, p99 = statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]
    print(f"\nload test: {len(ordered)} requests, 16 clients, {len(ordered) / seconds:.0f} req/s, "
          f"p50 {1000 * p50:.1f} ms, p99 {1000 * p99:.1f} ms, errors {len(failures)}")
    assert len(ordered) == 200 and failures == []


def test_health_over_http(base_url):
    import httpx

    assert httpx.get(f"{base_url}/healthz").json()["status"] == "ok"


def _chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright not installed (pip install playwright)")
    return path, sync_playwright


def test_web_page_uploads_an_image_and_shows_the_prediction(base_url, sample_images, tmp_path):
    path, sync_playwright = _chromium()
    screenshot = tmp_path / "web_page.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=[
            "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(base_url + "/")
            page.wait_for_selector("#model-card h2")  # the model card was fetched and rendered
            page.set_input_files("#file-input", str(sample_images[2]))
            page.wait_for_selector("#result.shown .bar-row", timeout=30_000)
            top_label = page.text_content("#top-label")
            bars = page.locator(".bar-row").count()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    print(f"\nweb page screenshot: {screenshot}  top label: {top_label}")
    assert top_label.split(" (")[0] in {"circle", "square", "star", "triangle"}
    assert bars == 4 and screenshot.stat().st_size > 10_000
