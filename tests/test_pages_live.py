"""Live job state in the app (AppTest): the sidebar panel and the run tables during a real `count` job
and after it ends, a launch that shows at once, readable labels, no None in a table, form choices
that survive a change of page, the estimates shown before launch, and a running study's curves per arm."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from classifier.train import TrainConfig
from data.datasets import load_dataset
from lab.engine import jobs
from lab.engine.children import create_children
from lab.engine.runs import Run
from lab.kinds.study_arm import run as run_arm
from lab.study.config import ArmConfig, StudyConfig, arm_runs
from pages.common import run_rows, status_text

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


def no_errors(at: AppTest) -> AppTest:
    assert not at.exception, [e.message for e in at.exception]
    return at


def reads(markdown: str) -> str:
    """Markdown source as it reads: the pages escape punctuation in run labels and progress text."""
    return re.sub(r"\\(.)", r"\1", markdown)


def sidebar_texts(at: AppTest) -> list[str]:
    """The sidebar's job panel: each job's progress text as it reads (Markdown escapes removed), or its
    caption when none runs."""
    return [reads(e.proto.text) if e.type == "progress" else e.value
            for e in at.sidebar if e.type == "progress" or (e.type == "caption" and e.value == "No jobs running.")]


def wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "condition not reached"
        time.sleep(0.2)


def test_sidebar_and_runs_table_show_a_running_job_then_its_end(runs_root):
    run = jobs.submit("count", {"steps": 80, "delay": 0.1})
    wait_for(lambda: (run.status().get("progress") or {}).get("done", 0) >= 3)
    at = no_errors(AppTest.from_file(APP, default_timeout=180).run())
    no_errors(at.switch_page("pages/runs.py").run())

    [panel] = sidebar_texts(at)
    assert panel.startswith("Count to 80 · ") and "running" in panel
    assert re.search(r"\d+% · \d+/80", panel), panel
    row = at.dataframe[0].value.iloc[0]
    assert (row["run"].startswith("Count to 80"), row["state"]) == (True, "running")
    assert 0 < row["progress"] < 100

    assert jobs.wait(run, timeout=120) == "done"
    no_errors(at.run())
    assert sidebar_texts(at) == ["No jobs running."]
    row = at.dataframe[0].value.iloc[0]
    assert (row["state"], row["progress"]) == ("done", 100)
    status = next(reads(e.proto.text) for e in at.main if e.type == "progress")
    assert "done · 100% · 80/80" in status


def test_a_launched_gan_run_shows_at_once_in_the_table_and_the_sidebar(runs_root, monkeypatch):
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])  # queue only: no worker in this test
    at = no_errors(AppTest.from_file(str(ROOT / "pages" / "train_gan.py"), default_timeout=180).run())
    no_errors(next(b for b in at.button if b.label == "Launch training").click().run())
    assert not any("Queued" in s.value for s in at.success)  # the table says it, no box to go stale
    row = at.dataframe[0].value.iloc[0]
    assert row["run"].startswith("DCGAN · quick · dermamnist") and row["state"] == "queued"

    app = no_errors(AppTest.from_file(APP, default_timeout=180).run())
    [panel] = sidebar_texts(app)
    assert panel.startswith("DCGAN · quick · dermamnist") and "queued" in panel


def test_run_rows_read_the_same_and_hold_no_none(runs_root):
    fresh = Run.create("count", {"steps": 5}, root=runs_root)
    failed = Run.create("gan", {"gan": "wgan_gp", "dataset": {"name": "dermamnist"}}, root=runs_root)
    failed.write_status("failed", error="RuntimeError: boom", progress={"done": 30, "total": 120})
    arm = Run.create("study-arm", {"arm": {"name": "real + dcgan"}, "seed": 1}, root=runs_root)
    arm.write_status("running", pid=None, started=time.time(), progress={"done": 217, "total": 500})
    rows = run_rows([fresh, failed, arm])
    assert all(value is not None for row in rows for value in row.values())
    assert [r["run"].split(" · ")[0] for r in rows] == ["Count to 5", "WGAN-GP", "Study arm 'real + dcgan' seed 1"]
    assert [r["progress"] for r in rows] == [0, 25, 43]
    assert rows[1]["detail"] == "RuntimeError: boom"


def test_a_progress_message_is_shown_while_its_run_runs_not_after(runs_root):
    from lab.engine.runs import this_process

    study = Run.create("study", {"arms": [], "seeds": [0]}, root=runs_root)
    study.write_status("running", started=time.time(), **this_process())
    study.progress(4, 4, message="aggregating", force=True)
    assert run_rows([study])[0]["detail"] == "aggregating"
    study.write_status("done")
    assert run_rows([study])[0]["detail"] == "", "a finished study's last message is not what it does now"


def test_the_current_dataset_lives_in_the_address(runs_root):
    """A new tab or a shared link opens on the dataset its address names; a choice on the Data page is
    written there; an address that names no valid dataset says why and opens on the default."""
    at = no_errors(AppTest.from_file(APP, default_timeout=180).run())
    assert not dict(at.query_params)  # the default dataset: a plain address
    no_errors(at.switch_page("pages/dataset.py").run())
    no_errors(at.selectbox(key="mnist_flag").select("pneumoniamnist").run())
    assert dict(at.query_params) == {"dataset": "pneumoniamnist"}
    tab = AppTest.from_file(APP, default_timeout=180)
    tab.query_params.update(at.query_params)
    no_errors(tab.run())
    assert "**Dataset:** pneumoniamnist (28px)" in reads(tab.sidebar.markdown[0].value)
    shared = AppTest.from_file(APP, default_timeout=180)
    shared.query_params["size"] = "huge"
    no_errors(shared.run())
    assert "**Dataset:** dermamnist (28px)" in reads(shared.sidebar.markdown[0].value)
    assert any("names no dataset" in w.value and "size" in w.value for w in shared.sidebar.warning)


def test_form_choices_survive_a_change_of_page(runs_root):
    at = no_errors(AppTest.from_file(APP, default_timeout=180).run())
    no_errors(at.switch_page("pages/train_gan.py").run())
    no_errors(at.selectbox(key="gan_kind").select("wgan_gp").run())
    no_errors(at.switch_page("pages/study.py").run())
    no_errors(at.number_input(key="study_seeds").set_value(5).run())
    no_errors(at.switch_page("pages/dataset.py").run())  # neither widget exists here: Streamlit drops them
    no_errors(at.switch_page("pages/train_gan.py").run())
    assert at.selectbox(key="gan_kind").value == "wgan_gp"
    no_errors(at.switch_page("pages/study.py").run())
    assert at.number_input(key="study_seeds").value == 5


def test_start_page_shows_what_exists_and_the_next_step(runs_root):
    at = no_errors(AppTest.from_file(APP, default_timeout=180).run())  # the start page is the default
    assert at.title[0].value == "GAN Augmentation Lab"
    assert "Nothing has been generated yet" in at.info[0].value
    gan = Run.create("gan", {"gan": "dcgan", "preset": "quick", "dataset": {"name": "dermamnist"}}, root=runs_root)
    gan.write_status("done")
    no_errors(at.run())
    assert "not made a set for this dataset" in at.info[0].value
    assert [m.value for m in at.metric][:1] == ["1"]  # GAN runs done


def test_a_queued_job_says_where_it_stands_and_can_move_to_the_front(runs_root):
    first = jobs.submit("count", {"steps": 2000, "delay": 0.05})
    second = jobs.submit("count", {"steps": 3, "delay": 0.01})
    third = jobs.submit("count", {"steps": 4, "delay": 0.01})
    try:
        wait_for(lambda: first.state == "running")
        app = no_errors(AppTest.from_file(APP, default_timeout=180).run())
        panels = sidebar_texts(app)
        assert len(panels) == 3
        assert "queued · 1st in line behind Count to 2000 · " in panels[1]
        assert "one job at a time (LAB_MAX_JOBS=1)" in panels[1]
        assert "queued · 2nd in line behind Count to 3 · " in panels[2]

        page = no_errors(AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=180).run())
        no_errors(next(box for box in page.selectbox if box.label == "Run").set_value(third.id).run())
        no_errors(next(b for b in page.button if b.label == "Move to the front").click().run())
        assert jobs.queue_position(third).position == 1 and jobs.queue_position(second).position == 2
    finally:
        for run in (third, second, first):
            jobs.cancel(run)
        jobs.wait(first, timeout=60)
    assert "cancelled while queued: it never started" in reads(status_text(second))


def test_train_gan_and_study_pages_show_an_estimate_before_launch(runs_root):
    at = no_errors(AppTest.from_file(APP, default_timeout=180).run())
    no_errors(at.switch_page("pages/train_gan.py").run())
    assert any(reads(c.value).startswith("expected about ") and "dcgan quick run" in reads(c.value)
               for c in at.caption)
    no_errors(at.switch_page("pages/study.py").run())
    estimate = next(reads(c.value) for c in at.caption if reads(c.value).startswith("expected about "))
    assert "dcgan quick runs" in estimate and "classifier runs" in estimate


def test_a_running_study_shows_each_arms_validation_curve_and_training_loss(runs_root):
    """Two arms × one seed trained for real (their events as the study's children write them), the
    study itself running in this process: the Study page draws one line per arm and seed."""
    config = StudyConfig(dataset={"name": "pneumoniamnist", "size": 28}, train_fraction=0.03, seeds=[0],
                         arms=[ArmConfig("real only"), ArmConfig("real + sampler", balance="sampler")],
                         train=TrainConfig(steps=40, batch_size=16, eval_every=20))
    study = Run.create("study", config.to_dict())
    subsets = config.subsets(load_dataset(config.dataset).train)
    children = create_children(study, "study-arm", arm_runs(config, subsets))  # marks the study running here
    for child in children.values():
        run_arm(child)
    assert study.state == "running"

    at = no_errors(AppTest.from_file(APP, default_timeout=180).run())
    no_errors(at.switch_page("pages/study.py").run())
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    titles = [chart["layout"]["title"]["text"] for chart in charts]
    assert titles == ["Validation balanced accuracy", "Training loss"]
    validation, loss = charts
    assert [line["name"] for line in validation["data"]] == ["real only · seed 0", "real + sampler · seed 0"]
    for line in validation["data"]:
        assert line["x"] == [20, 40] and all(0 <= y <= 1 for y in line["y"])
    for line in loss["data"]:
        assert line["x"] == [20, 40] and all(y > 0 for y in line["y"])
    assert validation["layout"]["xaxis"]["title"]["text"] == "optimizer step"


def test_the_sidebar_shows_a_parent_job_not_its_child_runs(runs_root):
    parent = jobs.submit("count", {"steps": 400, "delay": 0.05})
    wait_for(lambda: (parent.status().get("progress") or {}).get("done", 0) >= 1)
    kids = create_children(parent, "count", {k: (k, {"steps": 5}) for k in "ab"})  # queued behind it
    at = no_errors(AppTest.from_file(APP, default_timeout=180).run())
    [panel] = sidebar_texts(at)  # the parent's bar covers its children (lab/engine/children.py)
    assert panel.startswith("Count to 400") and "running" in panel
    assert [kids[k].state for k in "ab"] == ["queued", "queued"]
    jobs.cancel(parent)
    for run in (parent, *kids.values()):
        jobs.cancel(run)
