"""One real-browser smoke test: the app served by Streamlit, opened in Debian's Chromium."""
from __future__ import annotations

import os
import re
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


PAGES = {"start": "", "data": "dataset", "runs": "runs", "train-gan": "train_gan", "samples": "samples",
         "singan": "singan", "quality": "quality", "study": "study", "quiz": "quiz", "gan-steps": "gan_steps"}


def settled(page) -> None:
    """Wait until the app has finished running its script (twice over: a first visit reruns once) and
    charts have drawn."""
    for _ in range(2):
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120_000)
        page.wait_for_timeout(1500)


def test_data_page_shows_dermamnist_chart_and_samples_in_chromium(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(f"{server}/dataset", wait_until="domcontentloaded")
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


def test_every_page_opens_without_an_error_and_is_photographed(server, runs_root):
    """A screenshot of every page at 1400 px (test-artifacts/page-<name>.png), with one finished tiny GAN
    run and a synthetic set on disk so the run tables, pickers and the quiz have something to show;
    on the GAN step-by-step page a button press trains one step."""
    from playwright.sync_api import sync_playwright

    make_finished_gan_run(runs_root)
    ARTIFACTS.mkdir(exist_ok=True)
    problems = {}
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        for name, path in PAGES.items():
            page.goto(f"{server}/{path}", wait_until="domcontentloaded")
            page.wait_for_selector("h1", timeout=120_000)
            settled(page)
            page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"))
            text = page.inner_text("body")
            if page.locator("[data-testid='stException']").count() or "Traceback" in text:
                problems[name] = text[:2000]
            if ":material/" in text or "None" in page.inner_text("[data-testid='stMain']").split():
                problems[name] = "raw icon name or None shown"
        page.get_by_role("button", name="One step").click()
        page.get_by_text("after 1 step").wait_for(timeout=60_000)
        settled(page)
        page.screenshot(path=str(ARTIFACTS / "page-gan-steps-one-step.png"))
        stepped = page.inner_text("[data-testid='stMain']")
        browser.close()
    assert not problems, problems
    assert "D(G(z))" in stepped


def test_the_sidebar_and_run_table_follow_a_job_live_and_once_more_when_it_ends(server, runs_root):
    """No reload: the page polls while a job runs and redraws once when it has ended."""
    from playwright.sync_api import sync_playwright

    from lab.engine import jobs

    run = jobs.submit("count", {"steps": 40, "delay": 0.5})
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{server}/runs", wait_until="domcontentloaded")
        sidebar = page.locator("[data-testid='stSidebar']")
        sidebar.get_by_text("Count to 40").wait_for(timeout=120_000)
        deadline, running_text = time.time() + 120, ""
        while time.time() < deadline:  # the panel redraws itself: the page is never reloaded
            text = sidebar.inner_text()
            if re.search(r"\d+% · \d+/40", text):
                running_text = text  # read while it runs: on a slow machine the job may end before the next wait
                break
            page.wait_for_timeout(250)
        page.get_by_text("Count to 40").nth(1).wait_for(timeout=120_000)  # the page's status panel too
        page.screenshot(path=str(ARTIFACTS / "live-running.png"))
        assert jobs.wait(run, timeout=120) == "done"
        sidebar.get_by_text("No jobs running.").wait_for(timeout=30_000)
        page.get_by_text("done · 100% · 40/40").first.wait_for(timeout=30_000)  # the page redrawn once more
        page.screenshot(path=str(ARTIFACTS / "live-done.png"))
        browser.close()
    assert re.search(r"\d+% · \d+/40", running_text) and "running" in running_text


def make_finished_gan_run(root: Path) -> None:
    from gans.config import make_config
    from lab.kinds import gan as gan_job
    from lab.engine.runs import Run

    run = Run.create("gan", make_config("dcgan", latent=16, width=8, batch_size=16, steps=6, log_every=3,
                                        sample_every=3, checkpoint_every=3, export_per_class=4,
                                        device="cpu").to_dict(), root=root, name="dcgan-dermamnist")
    gan_job.run(run)
    run.write_status("done", progress={"done": 6, "total": 6, "message": "dcgan step 6"})


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
