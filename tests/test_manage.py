"""Run and set management (lab/engine/manage.py, `python -m lab runs|sets …`, the Runs page): names, tags,
notes, deletion with what depends on it named first, and the comparison of GAN runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from data.imageset import ImageSet
from data.synthetic import save_set, set_id
from lab.engine import manage
from lab.engine.runs import Run

ROOT = Path(__file__).resolve().parent.parent


def gan_run_with_set(root: Path) -> tuple[Run, Path]:
    run = Run.create("gan", {"gan": "dcgan", "preset": "quick", "dataset": {"name": "dermamnist"}}, root=root)
    images = ImageSet(np.zeros((4, 28, 28, 3), np.uint8), np.array([0, 0, 1, 1]), ["a", "b"])
    path = save_set(images, run.artifacts, "synthetic", generator="dcgan", run_id=run.id)
    run.write_status("done")
    return run, path


def test_names_tags_and_notes_of_runs_and_sets_are_kept(runs_root):
    run, path = gan_run_with_set(runs_root)
    manage.rename(run, "  baseline   DCGAN ")
    assert manage.tag(run, add=["keep", "paper", "keep"]) == ["keep", "paper"]
    assert manage.tag(run, remove=["keep"]) == ["paper"]
    manage.note(run, "lr 2e-4 worked\n")
    assert manage.meta(Run(run.path)) == {"name": "baseline DCGAN", "tags": ["paper"], "note": "lr 2e-4 worked"}
    assert manage.label(run) == "baseline DCGAN"
    manage.rename(run, "")
    assert manage.label(run).startswith("DCGAN · quick · dermamnist · ")

    manage.rename(path, "zeros for testing")
    manage.tag(path, add=["junk"])
    assert manage.meta(path)["name"] == "zeros for testing"
    assert json.loads(path.with_suffix(".json").read_text())["count"] == 4  # the sidecar keeps what it held
    with pytest.raises(ValueError, match="needs a name"):
        manage.rename(path, " ")


def test_deleting_names_what_depends_on_it_and_needs_force(runs_root):
    run, path = gan_run_with_set(runs_root)
    score = Run.create("score", {"sets": [set_id(path)]}, root=runs_root)
    score.write_status("done")
    study = Run.create("study", {"arms": [{"name": "real + set", "kind": "synthetic", "synthetic_set": str(path)}],
                                 "seeds": [0]}, root=runs_root)
    study.write_status("done")

    users = manage.dependents(path)
    assert len(users) == 2 and any(score.id in u for u in users) and any(study.id in u for u in users)
    with pytest.raises(manage.InUse, match=score.id):
        manage.delete(path)
    with pytest.raises(manage.InUse, match="set synthetic"):
        manage.delete(run)  # its set is used
    assert path.exists() and run.path.exists()
    manage.delete(run, force=True)
    assert not run.path.exists()
    assert manage.dependents(score) == [] and manage.delete(score) == [score.path]


def test_a_running_run_is_not_deleted(runs_root):
    run = Run.create("count", {"steps": 3}, root=runs_root)
    with pytest.raises(ValueError, match="queued: cancel it first"):
        manage.delete(run, force=True)
    assert run.path.exists()


def test_a_queued_or_running_run_is_cancelled_then_deleted(runs_root):
    from lab.engine import jobs
    from lab.engine.runs import process_alive

    queued = Run.create("count", {"steps": 3}, root=runs_root)
    assert manage.cancel_and_delete(queued) == [queued.path] and not queued.path.exists()
    running = jobs.submit("count", {"steps": 600, "delay": 0.1})  # a real worker process, a minute of work
    deadline = time.time() + 120
    while running.state != "running" or not running.events("progress"):
        assert time.time() < deadline, f"the count job did not start: {running.status()}"
        time.sleep(0.2)
    pid = running.status()["pid"]
    assert manage.cancel_and_delete(running) == [running.path]
    assert not running.path.exists() and not process_alive(pid)


def test_the_runs_page_offers_cancel_and_delete_for_a_queued_run(runs_root):
    older, _ = gan_run_with_set(runs_root)
    queued = Run.create("count", {"steps": 3}, root=runs_root)  # never scheduled: AppTest runs no worker here
    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=180).run()
    next(s for s in at.selectbox if s.label == "Run").set_value(queued.id).run()
    at.checkbox(key=f"confirm-{queued.id}").check().run()
    delete = at.button(key=f"delete-{queued.id}")
    assert delete.label == "Cancel and delete"
    delete.click().run()
    assert not at.exception and not queued.path.exists() and older.path.exists()


def test_saving_a_run_keeps_it_picked(runs_root):
    older, _ = gan_run_with_set(runs_root)
    time.sleep(1.1)  # run ids carry the second they were made in
    newer, _ = gan_run_with_set(runs_root)
    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=180).run()
    picker = next(s for s in at.selectbox if s.label == "Run")
    assert picker.value == newer.id
    picker.set_value(older.id).run()
    at.text_input(key=f"name-{older.id}").input("renamed")
    at.button(key=f"save-{older.id}").click().run()
    assert not at.exception and manage.meta(older)["name"] == "renamed"
    assert next(s for s in at.selectbox if s.label == "Run").value == older.id, "the picker stays on the saved run"


def test_cli_renames_tags_notes_and_deletes(runs_root):
    run, path = gan_run_with_set(runs_root)
    env = {**os.environ, "LAB_RUNS_DIR": str(runs_root)}

    def lab(*args) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)

    assert lab("runs", "rename", run.id, "my", "DCGAN").returncode == 0
    assert "tags keep, paper" in lab("runs", "tag", run.id, "keep", "paper").stdout
    assert lab("runs", "note", run.id, "first", "try").returncode == 0
    assert manage.meta(run) == {"name": "my DCGAN", "tags": ["keep", "paper"], "note": "first try"}
    assert lab("sets", "tag", set_id(path), "zeros").returncode == 0
    listed = lab("sets").stdout
    assert set_id(path) in listed and "[zeros]" in listed
    score = Run.create("score", {"sets": [set_id(path)]}, root=runs_root)
    score.write_status("done")
    refused = lab("sets", "delete", set_id(path))
    assert refused.returncode == 1 and score.id in refused.stderr and path.exists()
    assert lab("sets", "delete", set_id(path), "--force").returncode == 0 and not path.exists()


def test_runs_page_saves_a_name_tags_and_a_note(runs_root):
    run, _ = gan_run_with_set(runs_root)
    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=180).run()
    assert not at.exception
    at.text_input(key=f"name-{run.id}").input("baseline DCGAN")
    at.text_input(key=f"tags-{run.id}").input("keep, paper")
    at.text_area(key=f"note-{run.id}").input("the one to beat")
    at.button(key=f"save-{run.id}").click().run()
    assert not at.exception
    assert manage.meta(run) == {"name": "baseline DCGAN", "tags": ["keep", "paper"], "note": "the one to beat"}
    assert at.dataframe[0].value.iloc[0]["run"] == "baseline DCGAN"


def test_gan_runs_are_compared_as_smoothed_curves_named_by_their_labels(runs_root):
    runs = []
    for name, losses in (("first", [4.0, 2.0, 1.0, 0.5]), ("second", [3.0, 3.0, 3.0, 3.0])):
        run = Run.create("gan", {"gan": "dcgan", "preset": "quick", "dataset": {"name": "dermamnist"}}, root=runs_root)
        for step, loss in enumerate(losses, start=1):
            run.log_event(type="progress", done=25 * step, total=100, loss_d=loss, loss_g=1.0)
        run.write_status("done")
        manage.rename(run, name)
        runs.append(run)
    assert manage.series(runs[0], "loss_d") == ([25, 50, 75, 100], [4.0, 2.0, 1.0, 0.5])
    assert manage.smooth([3.0, 3.0, 3.0], 0.9) == pytest.approx([3.0, 3.0, 3.0])  # debiased: no pull towards 0
    assert manage.smooth([4.0, 2.0], 0.5) == pytest.approx([4.0, (0.25 * 4 + 0.5 * 2) / 0.75])

    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=180).run()
    assert not at.exception
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    traces = {trace["name"]: trace["y"] for trace in figure["data"]}
    assert set(traces) == {"first", "second"}
    assert traces["first"] == pytest.approx(manage.smooth([4.0, 2.0, 1.0, 0.5], 0.6))


def test_per_class_recall_is_a_mean_with_its_interval_over_seeds():
    results = [{"arm": "real only", "seed": seed, "test": {"per_class_recall": [recall, 1.0]}}
               for seed, recall in enumerate((0.4, 0.6))]
    results.append({"arm": "real + dcgan", "seed": 0, "test": {"per_class_recall": [0.7, 0.9]}})
    recall = manage.recall_by_class(results)
    first, second = recall["real only"]
    assert (first.mean, first.n) == (pytest.approx(0.5), 2) and first.lo < 0.4 and first.hi > 0.6
    assert (second.mean, second.lo, second.hi) == (1.0, 1.0, 1.0)
    assert recall["real + dcgan"][0].n == 1  # one seed: a mean without an interval
