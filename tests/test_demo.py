"""A demo in one click (lab/demo.py), and what it rests on: a queued run that waits for another run to be
done (jobs.submit(after=...)), through the real queue and real worker processes."""
from __future__ import annotations

import json

import pytest

from data.datasets import DatasetSpec
from gans.config import make_config
from lab.demo import DEMO_FILE, DemoPlan, demo_plan, demo_status, prepare_demo, read_demo
from lab.engine import jobs
from lab.engine.runs import list_runs
from tests.conftest import DATA_DIR

SCANS = sorted((DATA_DIR.resolve() / "oct2017_samples").glob("*.jpeg"))


def test_a_run_queued_after_another_starts_only_once_that_one_is_done(runs_root, monkeypatch):
    monkeypatch.setenv("LAB_MAX_JOBS", "2")  # a free slot: only the dependency keeps the second one waiting
    first = jobs.submit("count", {"steps": 4, "delay": 0.5}, root=runs_root, start=False)
    second = jobs.submit("count", {"steps": 1, "delay": 0}, root=runs_root, start=False, after=[first])
    assert second.state == "queued"
    assert jobs.state_note(second) == f"waits for count {first.id} to finish (it is queued)"
    jobs.schedule(runs_root)
    assert jobs.wait(first, timeout=120) == "done" and jobs.wait(second, timeout=120) == "done"
    assert second.status()["started"] >= first.status()["finished"]


def test_a_run_waiting_for_a_cancelled_run_fails_naming_it_and_finishes_once_both_are_resumed(runs_root):
    first = jobs.submit("count", {"steps": 1, "delay": 0}, root=runs_root, start=False)
    second = jobs.submit("count", {"steps": 1, "delay": 0}, root=runs_root, start=False, after=[first])
    jobs.cancel(first)
    jobs.schedule(runs_root)
    status = second.status()
    assert status["state"] == "failed"
    assert status["error"] == f"count run {first.id}, which it waits for, is cancelled: resume that run, then this one"
    jobs.resume(first, runs_root)
    jobs.resume(second, runs_root)
    assert jobs.wait(first, timeout=120) == "done" and jobs.wait(second, timeout=120) == "done"


def test_prepare_demo_queues_gpnn_of_each_oct_scan_a_dcgan_quick_and_a_score_of_its_set_once(runs_root):
    demo = prepare_demo(runs_root, start=False)
    assert [run.settings for run in demo.gpnn] == [
        make_config("gpnn", "quick", mode="image", image_path=str(scan)).to_dict() for scan in SCANS]
    assert demo.gan.settings == make_config("dcgan", "quick", dataset=DatasetSpec()).to_dict()
    assert demo.gan.settings["dataset"]["name"] == "dermamnist"
    score = demo.score.settings
    assert score["sets"] == [str(demo.gan.artifacts / "synthetic.npz")] and score["inception"] is False
    assert demo.score.raw_status()["after"] == [str(demo.gan.path)]
    made = sorted(run.path for run in list_runs(root=runs_root))
    assert len(made) == len(SCANS) + 2

    again = prepare_demo(runs_root, start=False)  # pressed twice: nothing new
    assert [run.path for run in again.runs] == [run.path for run in demo.runs]
    assert sorted(run.path for run in list_runs(root=runs_root)) == made

    pages = {page.page: page for page in demo_status(runs_root)}
    assert pages["gan_steps"].state == "ready"
    for name in ("single_image", "samples", "quiz", "quality"):
        assert pages[name].state == "waiting" and ", about " in pages[name].detail, pages[name]
    assert pages["quality"].seconds_left > pages["samples"].seconds_left > pages["single_image"].seconds_left > 0


def test_a_damaged_demo_file_is_named_and_a_new_demo_replaces_it(runs_root):
    (runs_root / DEMO_FILE).write_text(json.dumps({"gpnn": [], "gan": "gan/../../etc", "score": "score/1"}))
    with pytest.raises(ValueError, match=DEMO_FILE):
        demo_status(runs_root)
    demo = prepare_demo(runs_root, start=False)
    assert [run.path for run in read_demo(runs_root).runs] == [run.path for run in demo.runs]


def tiny_plan() -> DemoPlan:
    """The demo's three kinds of run, each as small as it goes: one scan, a 6-step DCGAN, one metric."""
    plan = demo_plan()
    gpnn = make_config("gpnn", "quick", mode="image", image_path=str(SCANS[0]), variations=2, max_side=48,
                       iters=2, fine_levels=1, fine_iters=1, sifid=False).to_dict()
    gan = make_config("dcgan", latent=16, width=8, batch_size=16, steps=6, log_every=3, sample_every=3,
                      checkpoint_every=3, export_per_class=4, device="cpu").to_dict()
    score = {**plan.score, "metrics": ["psnr"], "distribution": False}
    return DemoPlan([gpnn], gan, score)


def test_each_page_of_a_demo_is_ready_once_its_runs_are_done_and_the_score_waited_for_the_dcgan(runs_root,
                                                                                                  monkeypatch):
    monkeypatch.setenv("LAB_MAX_JOBS", "3")  # slots for all three: only the dependency holds the score back
    demo = prepare_demo(runs_root, plan=tiny_plan())
    for run in demo.runs:
        assert jobs.wait(run, timeout=300) == "done", (run, run.status(), run.log_path.read_text()[-2000:])
    assert demo.score.status()["started"] >= demo.gan.status()["finished"]
    pages = demo_status(runs_root)
    assert [(page.page, page.state) for page in pages] == [(name, "ready") for name in (
        "single_image", "samples", "quiz", "quality", "gan_steps")]
    assert (demo.score.artifacts / "scores.json").exists()
    again = prepare_demo(runs_root)  # done: pressing again queues nothing
    assert [run.path for run in again.runs] == [run.path for run in demo.runs]
