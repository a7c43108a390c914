"""One real-browser smoke test: the app served by Streamlit, opened in Debian's Chromium."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(runs_root):
    port = free_port()
    env = {**os.environ, "LAB_RUNS_DIR": str(runs_root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start:\n{proc.stdout.read()}")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def launch_chromium(playwright):
    assert Path(CHROMIUM).exists(), "Chromium is missing: apt-get install chromium"
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"],
    )


def test_data_page_shows_dermamnist_chart_and_samples_in_chromium(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(server, wait_until="domcontentloaded")
        try:
            # The class-count chart (plotly) and at least one sample grid image.
            page.wait_for_selector(".js-plotly-plot", timeout=120_000)
            page.wait_for_selector("[data-testid='stImage'] img, [data-testid='stImageContainer'] img",
                                   timeout=120_000)
            page.wait_for_timeout(1500)  # let plotly finish drawing before the screenshot
            text = page.inner_text("body")
            exceptions = page.locator("[data-testid='stException']").count()
        finally:
            page.screenshot(path=str(ARTIFACTS / "browser-data-page.png"), full_page=True)
        browser.close()
    assert "dermamnist" in text.lower()
    assert "melanocytic nevi" in text.lower()  # the majority class is named in the chart or table
    assert exceptions == 0 and "Traceback" not in text


def test_a_deep_link_as_first_visit_opens_the_page_inside_the_app(server):
    """Streamlit's legacy pages/ mode must not serve the first visit of a fresh server."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{server}/study", wait_until="domcontentloaded")
        page.wait_for_selector("text=Launch study", timeout=120_000)
        page.wait_for_selector("[data-testid='stSidebar'] >> text=Jobs", timeout=30_000)
        sidebar = page.inner_text("[data-testid='stSidebar']")
        browser.close()
    assert "Dataset: dermamnist" in sidebar and "Augmentation study" in sidebar
    assert "train gan" not in sidebar and "common" not in sidebar  # no list of page file names
