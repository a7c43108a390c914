"""The review gallery in the real browser: keep and drop images by keyboard, reload, the choices are still
there, save the reviewed set (the app served by Streamlit, opened in Debian's Chromium)."""
from __future__ import annotations

import json
import time

from gans.config import make_config
from lab.curation import CurateConfig, review_choices
from lab.engine.runs import Run
from lab.kinds import curate, gan
from metrics.curation import CurationConfig, CurationScores, worst_first
from tests.browser_support import ROOT, launch_chromium, settled

ARTIFACTS = ROOT / "test-artifacts"

PNEUMONIA = {"name": "pneumoniamnist", "size": 28}


def scored_set(root) -> Run:
    """A finished curation run (scores only) of the set of a barely trained DCGAN on 10% of PneumoniaMNIST."""
    config = make_config("dcgan", "quick", dataset=PNEUMONIA, train_fraction=0.1, steps=2, export_per_class=6,
                         sample_every=1000, checkpoint_every=1000)
    generator = Run.create("gan", config.to_dict(), root=root)
    gan.run(generator)
    generator.write_status("done")
    scoring = Run.create("curate", CurateConfig(set=f"{generator.id}/synthetic",
                                                scoring=CurationConfig(steps=5, folds=2)).to_dict(), root=root)
    curate.run(scoring)
    scoring.write_status("done")
    return scoring


def wait_for(condition, what: str, seconds: float = 60):
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"gave up waiting for {what}"
        time.sleep(0.25)


def test_review_by_keyboard_survives_a_reload_and_saves_the_reviewed_set(server, runs_root):
    from playwright.sync_api import sync_playwright

    run = scored_set(runs_root)
    order = worst_first(CurationScores.load(run.artifacts / "scores.json"), "confidence").tolist()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.goto(f"{server}/review", wait_until="domcontentloaded")
        page.wait_for_selector("figure.tile", timeout=120_000)
        settled(page)
        for key in ["d", "k", "ArrowRight", "d"]:  # image 1 dropped, 2 kept, 3 skipped, 4 dropped
            page.keyboard.press(key)
        expected = {order[0]: "drop", order[1]: "keep", order[3]: "drop"}
        wait_for(lambda: review_choices(run) == expected, "the choices to be saved")
        page.reload(wait_until="domcontentloaded")
        page.wait_for_selector("figure.tile", timeout=120_000)
        settled(page)
        shown = {int(t.get_attribute("data-index")): t.get_attribute("data-choice")
                 for t in page.locator("figure.tile").all()}
        page.screenshot(path=str(ARTIFACTS / "page-review.png"), full_page=True)
        page.get_by_role("button", name="Save the reviewed set").click()
        wait_for(lambda: (run.artifacts / "reviewed.json").exists(), "the reviewed set")
        page.get_by_text("set ").first.wait_for(timeout=30_000)
        settled(page)
        exceptions = page.locator("[data-testid='stException']").count()
        browser.close()
    assert {i: c for i, c in shown.items() if c} == expected
    curation = json.loads((run.artifacts / "reviewed.json").read_text())["curation"]
    assert curation["review"]["dropped"] == sorted([order[0], order[3]]) and curation["review"]["kept"] == [order[1]]
    assert curation["kept"] == 10 and exceptions == 0
