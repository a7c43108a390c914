"""The GAN step-by-step view under a classroom's load: steps per second with 1 and with 4 browser tabs.

    LAB_DATA_DIR=../shared/datasets .venv/bin/python bench/step_view.py [--tabs 1 4] [--seconds 30]

A real Streamlit server (`streamlit run app.py`, a fresh runs folder) and real Chromium: for each N in
`--tabs`, N tabs (each its own browser context, so its own session, as N students would be) open the
step view, then each presses "One step" again and again for `--seconds`, waiting every time until the
page shows the new step. Reported per N: steps per second of each tab and of all of them together, and
the seconds one press took (median and slowest). The reference, measured in the same run: the library's
own step (`lab.teaching.GanStepper.step` at the page's default batch) timed in a loop in this process,
without a page. The load average before and after is printed beside the figures: the machine is shared.
The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import CHROMIUM_ARGS, chromium_path, streamlit_server  # noqa: E402

SCRIPT_DONE = "[data-testid='stApp'][data-test-script-state='notRunning']"


async def press_for(page, seconds: float) -> list[float]:
    """Press "One step" until `seconds` have passed; the seconds each press took until its step showed."""
    took = []
    button = page.get_by_role("button", name="One step")
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:
        began = time.perf_counter()
        await button.click()
        await page.get_by_text(re.compile(rf"after {len(took) + 1} steps?\b")).wait_for(timeout=300_000)
        await page.wait_for_selector(SCRIPT_DONE, timeout=300_000)  # and the rest of the page, its chart too
        took.append(time.perf_counter() - began)
    return took


async def tabs_at_once(url: str, tabs: int, seconds: float) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        pages = []
        for _ in range(tabs):
            page = await (await browser.new_context(viewport={"width": 1400, "height": 1200})).new_page()
            await page.goto(f"{url}/gan_steps", wait_until="domcontentloaded")
            await page.get_by_role("button", name="One step").wait_for(timeout=300_000)
            pages.append(page)
        await asyncio.gather(*(page.wait_for_selector(SCRIPT_DONE, timeout=300_000) for page in pages))
        began = time.perf_counter()
        presses = await asyncio.gather(*(press_for(page, seconds) for page in pages))
        elapsed = time.perf_counter() - began
        await browser.close()
    per_tab = [round(len(took) / elapsed, 2) for took in presses]
    every = [s for took in presses for s in took]
    return {"tabs": tabs, "steps_per_s_per_tab": per_tab, "steps_per_s_total": round(sum(per_tab), 2),
            "press_s_median": round(statistics.median(every), 3), "press_s_max": round(max(every), 3)}


def library_steps_per_second(seconds: float) -> dict[str, float]:
    """The reference: the step the page runs, without the page (the page's default batch and dataset), with
    one torch thread (as the app runs it) and with two."""
    import torch

    from data.datasets import DatasetSpec, load_dataset
    from lab.teaching import GanStepper

    images = load_dataset(DatasetSpec()).train
    rates = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        stepper = GanStepper(images, batch=32)
        stepper.step()  # the first step warms up allocators
        steps, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            stepper.step()
            steps += 1
        rates[f"{threads}_thread{'s' * (threads > 1)}"] = round(steps / (time.perf_counter() - began), 2)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long every tab keeps pressing")
    args = parser.parse_args()
    load_before = os.getloadavg()
    reference = library_steps_per_second(min(args.seconds, 5.0))
    print(f"library step alone, steps/s: {reference}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, streamlit_server(Path(tmp) / "runs") as url:
        views = []
        for tabs in args.tabs:
            views.append(asyncio.run(tabs_at_once(url, tabs, args.seconds)))
            print(views[-1], flush=True)
    print(json.dumps({"reference_library_steps_per_s": reference, "views": views, "seconds": args.seconds,
                      "load_average_before": [round(x, 2) for x in load_before],
                      "load_average_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
