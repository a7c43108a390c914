"""Real-browser tests: the app served by Streamlit, opened in Debian's Chromium; pages, live jobs, a tab on
another dataset, downloads and pickers while a job runs."""
from __future__ import annotations

import json
import re
import time
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np

from tests.browser_support import ROOT, launch_chromium, settled

ARTIFACTS = ROOT / "test-artifacts"
PAGES = {"start": "", "data": "dataset", "runs": "runs", "train-gan": "train_gan", "samples": "samples",
         "singan": "singan", "quality": "quality", "study": "study", "quiz": "quiz", "gan-steps": "gan_steps"}


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


def make_finished_study(root: Path):
    """A tiny finished study on PneumoniaMNIST (one channel): real only, one seed, 6 steps."""
    from classifier.train import TrainConfig
    from lab.engine.runs import Run
    from lab.kinds.study import run as run_study
    from lab.study.config import ArmConfig, StudyConfig

    config = StudyConfig(dataset={"name": "pneumoniamnist", "size": 28}, train_fraction=0.03, seeds=[0],
                         arms=[ArmConfig("real only")], train=TrainConfig(steps=6, batch_size=16, eval_every=6))
    run = Run.create("study", config.to_dict(), root=root)
    run_study(run)
    run.write_status("done")
    return run


def open_page(page, title: str) -> None:
    """Open a page from the sidebar's navigation: the same session, so what it remembers stays."""
    page.locator("[data-testid='stSidebarNav']").get_by_text(title, exact=True).click()
    page.get_by_role("heading", level=1).first.wait_for(timeout=120_000)
    settled(page)


def no_exception(page) -> None:
    text = page.inner_text("body")
    assert page.locator("[data-testid='stException']").count() == 0 and "Traceback" not in text, text[:3000]


def test_a_study_opens_from_a_tab_on_another_dataset(server, runs_root):
    """A new tab starts on DermaMNIST (RGB); the study it shows was run on PneumoniaMNIST (grayscale): its
    results and Grad-CAM come from the study's own data. A link that names a dataset opens on it."""
    from playwright.sync_api import sync_playwright

    make_finished_study(runs_root)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 3000})
        page.goto(f"{server}/study", wait_until="domcontentloaded")
        page.get_by_text("Grad-CAM; predicted").wait_for(timeout=120_000)
        settled(page)
        page.get_by_text("Grad-CAM; predicted").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "study-from-another-dataset.png"))
        no_exception(page)
        assert "dermamnist (28px)" in page.inner_text("[data-testid='stSidebar']")
        page.goto(f"{server}/study?dataset=pneumoniamnist", wait_until="domcontentloaded")
        page.get_by_text("Grad-CAM; predicted").wait_for(timeout=120_000)
        settled(page)
        no_exception(page)
        assert "pneumoniamnist (28px)" in page.inner_text("[data-testid='stSidebar']")
        open_page(page, "Data")  # a change of page keeps the dataset in the address
        assert "dataset=pneumoniamnist" in page.url
        browser.close()


def save_download(page, name: str) -> bytes:
    """Click the download button labelled `name` and return the bytes the browser saved."""
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name=name).click()
    return Path(download.value.path()).read_bytes()


def test_every_download_works_while_a_job_runs(server, runs_root):
    """With a job running (the sidebar polls), every download button on every page delivers its file: the
    exported set (npz, image-folder zip), the study's report, the variations, the score tables."""
    from playwright.sync_api import sync_playwright

    from gans.gpnn import gpnn_config
    from lab.engine import jobs
    from lab.engine.runs import Run
    from lab.kinds.gpnn import run as run_gpnn
    from lab.kinds.score import run as run_score
    from lab.sets import list_sets
    from metrics.scoring import ScoreConfig

    make_finished_gan_run(runs_root)
    make_finished_study(runs_root)
    gpnn = Run.create("gpnn", gpnn_config("quick", mode="image", dataset={"name": "pneumoniamnist", "size": 28},
                                          image_index=7, variations=3, iters=2, fine_levels=1, fine_iters=1,
                                          sifid=False).to_dict(), root=runs_root)
    run_gpnn(gpnn)
    gpnn.write_status("done")
    score = Run.create("score", ScoreConfig(sets=[str(list_sets()[0].path)], distribution=False, inception=False,
                                            prescreen=False).to_dict(), root=runs_root)
    run_score(score)
    score.write_status("done")
    files = {}
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(f"{server}/samples", wait_until="domcontentloaded")
        generate = page.get_by_role("button", name="Generate and register the set")
        generate.wait_for(timeout=120_000)
        settled(page)
        generate.click()
        page.get_by_text("Registered").wait_for(timeout=180_000)
        busy = jobs.submit("count", {"steps": 1000, "delay": 0.2})  # runs through every click below
        open_page(page, "Runs")  # a page run that finds it running: the sidebar polls from now on
        page.locator("[data-testid='stSidebar']").get_by_text("Count to 1000").wait_for(timeout=120_000)
        open_page(page, "Samples")
        files["npz"] = save_download(page, "Download npz")
        files["zip"] = save_download(page, "Download image-folder zip")
        open_page(page, "Augmentation study")
        for name in ("report.html", "report.csv", "summary.json"):
            files[name] = save_download(page, f"Download {name}")
        open_page(page, "Single image")
        files["variations"] = save_download(page, "Variations (image-folder zip)")
        open_page(page, "Quality")
        files["scores.csv"] = save_download(page, "Download CSV")
        files["scores.json"] = save_download(page, "Download JSON")
        still_running = busy.state == "running"
        browser.close()
    jobs.cancel(busy)
    assert still_running, "every click came while the job ran"
    with np.load(BytesIO(files["npz"])) as exported:
        assert exported["images"].shape[0] == 7 * 200 and len(exported["labels"]) == 7 * 200
    with zipfile.ZipFile(BytesIO(files["zip"])) as folder:
        assert len([n for n in folder.namelist() if n.endswith(".png")]) == 7 * 200
    assert b"<html" in files["report.html"].lower() and "real only" in files["report.csv"].decode()
    assert json.loads(files["summary.json"])["arms"] and json.loads(files["scores.json"])
    with zipfile.ZipFile(BytesIO(files["variations"])) as folder:
        assert len([n for n in folder.namelist() if n.endswith(".png")]) == 3
    assert files["scores.csv"].decode().splitlines()[0].count(",") >= 3


def test_a_picker_stays_open_while_a_job_runs(server, runs_root):
    """The Runs page polls while a job runs; its Run picker, opened, stays open across the polls and takes a
    choice made with the mouse."""
    from playwright.sync_api import expect, sync_playwright

    from lab.engine import jobs
    from lab.engine.manage import label
    from lab.engine.runs import Run

    finished = Run.create("gan", {"gan": "dcgan", "preset": "quick", "dataset": {"name": "dermamnist"}},
                          root=runs_root)
    finished.write_status("done")
    time.sleep(1.1)  # run ids carry the second they were made in: the job is the newest, picked at first
    busy = jobs.submit("count", {"steps": 1000, "delay": 0.2})
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{server}/runs", wait_until="domcontentloaded")
        page.get_by_text(re.compile(r"running · \d+% · \d+/1000")).first.wait_for(timeout=120_000)
        settled(page)
        picker = page.get_by_role("combobox", name="Run")
        picker.click()
        option = page.get_by_role("option", name=label(finished))
        option.wait_for(timeout=10_000)
        shown = page.inner_text("[data-testid='stMain']")
        deadline = time.time() + 60
        while page.inner_text("[data-testid='stMain']") == shown:  # the job's progress redrawn: the page polled
            assert time.time() < deadline, "the page did not poll"
            page.wait_for_timeout(250)
        page.wait_for_timeout(2 * 2000)  # two more polls (POLL_S) with the list open
        assert option.is_visible(), "the picker closed while the job ran"
        option.click()
        expect(picker).to_have_value(label(finished), timeout=30_000)
        settled(page)
        expect(picker).to_have_value(label(finished))  # and kept through the page's polls since
        tables = page.locator("[data-testid='stMain'] [data-testid='stDataFrame']").count()
        still_running = busy.state == "running"
        browser.close()
    jobs.cancel(busy)
    assert still_running
    assert tables == 1, "one run table, redrawn in place by the polling part, none left over"
