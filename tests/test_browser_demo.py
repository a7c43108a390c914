"""The start page's "Prepare a demo" in a real Streamlit server and real Chromium: one press queues the demo's
jobs, the page says for each page what it waits for and about how long, and a second press queues nothing."""
from __future__ import annotations

from lab.demo import read_demo
from lab.engine import jobs
from lab.engine.runs import list_runs
from tests.browser_support import ROOT, launch_chromium, settled, streamlit_server

ARTIFACTS = ROOT / "test-artifacts"


def test_prepare_a_demo_queues_it_once_and_says_when_each_page_is_ready(runs_root):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with streamlit_server(runs_root) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.goto(url, wait_until="domcontentloaded")
        button = page.get_by_role("button", name="Prepare a demo")
        button.wait_for(timeout=120_000)
        settled(page)
        try:
            button.click()
            page.get_by_text("waiting: the scores of the DCGAN").wait_for(timeout=120_000)
            settled(page)
            text = page.inner_text("[data-testid='stMain']")
            made = sorted(run.path for run in list_runs(root=runs_root))
            button.click()
            settled(page)
            again = sorted(run.path for run in list_runs(root=runs_root))
            page.screenshot(path=str(ARTIFACTS / "start-demo.png"), full_page=True)
            exceptions = page.locator("[data-testid='stException']").count()
        finally:
            demo = read_demo(runs_root)
            for run in demo.runs if demo else []:  # the demo's jobs would run on after the test
                jobs.cancel(run)
            for run in demo.runs if demo else []:
                jobs.wait(run, timeout=120)
            browser.close()
    assert exceptions == 0 and "Traceback" not in text
    assert len(made) == 6 and again == made  # 4 GPNN runs, the DCGAN, its score; pressed twice
    assert "waiting: GPNN variations of the 4 sample OCT scans:" in text
    assert "waiting: a DCGAN quick on DermaMNIST 28 px: its images per class: queued, about" in text
    assert "ready: needs no run: its small GAN trains as you press" in text
