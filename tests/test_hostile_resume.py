"""A resumed study equals an uninterrupted one (issue 21).

A study runs its arms side by side, each in a worker of its own with the share of the cores its plan
gave it; an arm's numbers depend on its thread count. After a kill -9 of the study's worker and of its
children's workers, `runs resume` must finish every arm exactly once, with that same share, whoever
was queued when the kill came: only the study starts its children, never the queue.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data.files import read_json
from lab import cli
from lab.engine import children, executors, jobs
from lab.engine.children import read_children
from lab.engine.runs import Run, list_runs, locate, process_alive, this_process

ROOT = Path(__file__).resolve().parent.parent
STUDY = {"dataset": {"name": "pneumoniamnist", "size": 28}, "train_fraction": 0.1, "seeds": [0, 1, 2],
         "arms": [{"name": "real only"}, {"name": "balanced", "balance": "sampler"}],
         "train": {"steps": 12, "batch_size": 16, "eval_every": 4}}
ARMS = 6  # 2 arms x 3 seeds, seed-major, two at a time: later seeds' arms wait queued while earlier ones run
STUDY_TIMEOUT_S = 300


def study_environment(patch: pytest.MonkeyPatch, root: Path) -> None:
    """Two children side by side, and two queue slots: a free slot would start a queued child if the
    queue were allowed to. No thread setting of our own: a worker gets exactly what the lab gives it."""
    patch.setenv("LAB_RUNS_DIR", str(root))
    patch.setenv("LAB_CHILD_WORKERS", "2")
    patch.setenv("LAB_MAX_JOBS", "2")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        patch.delenv(name, raising=False)


def wait_for(predicate, timeout: float, poll: float = 0.05) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(poll)


def arm_numbers(study: Run) -> dict[str, dict]:
    """Each arm's (key "arm|seed") result.json without its timing: test and validation metrics, the
    training losses of its history (which move with any change of the weights), its thread count."""
    return {key: {name: value for name, value in read_json(child.artifacts / "result.json").items()
                  if name != "train_seconds"}
            for key, child in read_children(study).items()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, dict]:
    if executors.cpu_cores() < 2:
        pytest.skip("one core: a child's share of the cores is all of them, so a wrong thread count cannot show")
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("uninterrupted") / "runs"
        study_environment(patch, root)
        study = jobs.submit("study", STUDY, root=root)
        assert jobs.wait(study, timeout=STUDY_TIMEOUT_S) == "done", study.raw_status().get("error")
        return arm_numbers(study)


def kill_worker(run: Run) -> None:
    """kill -9 the run's own worker process, proven from status.json's pid and /proc first."""
    status = run.raw_status()
    assert locate(run, status) == "worker", f"{run.id}: no worker process of its own to kill"
    os.kill(status["pid"], signal.SIGKILL)
    wait_for(lambda: not process_alive(status["pid"], status["pid_start"]), timeout=30)


def arms_states(study: Run) -> list[str]:
    return [child.raw_status()["state"] for child in read_children(study).values()]


def first_checkpoints_written(study: Run) -> bool:
    kids = read_children(study).values()
    return "done" not in arms_states(study) and any((kid.checkpoints / "last.pt").exists() for kid in kids)


def first_seed_done_and_the_next_started(study: Run) -> bool:
    states = arms_states(study)
    return states.count("done") == 2 and states.count("running") == 2


KILL_POINTS = (first_checkpoints_written, first_seed_done_and_the_next_started)


def wait_for_kill_point(study: Run, kill_point) -> None:
    wait_for(lambda: len(read_children(study)) == ARMS and kill_point(study), timeout=STUDY_TIMEOUT_S)


def kill_the_study_and_its_running_arms(study: Run) -> None:
    state = study.raw_status()["state"]
    assert state == "running", f"the study is {state} while its arms run: the queue started them, not the study"
    kill_worker(study)  # the parent first: it must not see its children die and cancel the rest
    running = [kid for kid in read_children(study).values() if kid.raw_status()["state"] == "running"]
    for kid in running:
        kill_worker(kid)
    assert running and "queued" in arms_states(study), "the kill came when no arm was left queued"


def resume_with_the_cli(run: Run) -> None:
    resumed = subprocess.run([sys.executable, "-m", "lab", "runs", "resume", run.id], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr


def test_a_study_killed_at_several_points_and_resumed_gives_every_arm_the_numbers_of_an_uninterrupted_run(
        uninterrupted, runs_root, monkeypatch):
    study_environment(monkeypatch, runs_root)
    study = jobs.submit("study", STUDY)
    for kill_point in KILL_POINTS:  # one study, killed and resumed at each point in turn
        wait_for_kill_point(study, kill_point)
        kill_the_study_and_its_running_arms(study)
        resume_with_the_cli(study)
    assert jobs.wait(study, timeout=STUDY_TIMEOUT_S) == "done", study.raw_status().get("error")

    numbers = arm_numbers(study)
    share = executors.cpu_cores() // 2
    assert {key: n["threads"] for key, n in numbers.items()} == {key: share for key in numbers}, \
        "an arm trained with another thread count than its share of the cores"
    assert numbers == uninterrupted
    arm_runs = sorted((runs_root / "study-arm").iterdir())
    assert len(arm_runs) == ARMS, "an arm was run twice, or one is missing"
    for path in arm_runs:
        assert (path / "log.txt").read_text().count("worker ends: done") == 1, f"{path.name} finished twice"


# --- who starts a queued child of a side-by-side parent ---------------------------------------------

def parent_with_a_queued_child(parent_state: str) -> tuple[Run, Run]:
    """A parent running its children side by side (in this process), then left in `parent_state`
    ("killed": it says running, but its process is gone), and its child still queued."""
    parent = Run.create("count", {"steps": 1})
    kids = children.create_children(parent, "count", {k: (k, {"steps": 1}) for k in "ab"})
    if parent_state == "killed":
        gone = subprocess.Popen(["true"])
        gone.wait()
        parent.write_status("running", pid=gone.pid, pid_start=1)
    elif parent_state != "running":
        parent.write_status(parent_state, pid=None, pid_start=None)
    return parent, kids["b"]


@pytest.mark.parametrize("parent_state", ["running", "killed", "failed", "cancelled", "queued"])
def test_the_queue_never_starts_a_side_by_side_child_whatever_its_parents_state(runs_root, monkeypatch,
                                                                                parent_state):
    monkeypatch.setenv("LAB_CHILD_WORKERS", "2")
    monkeypatch.setenv("LAB_MAX_JOBS", "4")
    parent, child = parent_with_a_queued_child(parent_state)
    started = jobs.schedule()
    assert child.path not in [run.path for run in started] and child.raw_status()["state"] == "queued"
    assert jobs.state_note(child).startswith(f"waits for its parent count {parent.id} to start it")
    with pytest.raises(ValueError, match=f"waits for its parent count {parent.id}"):
        jobs.move_to_front(child)
    jobs.cancel(child)
    for run in started:  # a parent queued again was started: no worker outlives the test
        jobs.wait(run, timeout=60)


def test_a_child_whose_parent_is_deleted_or_done_is_started_by_the_queue(runs_root, monkeypatch):
    monkeypatch.setenv("LAB_CHILD_WORKERS", "2")
    monkeypatch.setenv("LAB_MAX_JOBS", "4")
    deleted_parent, orphan = parent_with_a_queued_child("failed")
    shutil.rmtree(deleted_parent.path)
    done_parent, leftover = parent_with_a_queued_child("done")
    started = [run.path for run in jobs.schedule()]
    assert orphan.path in started and leftover.path in started
    assert jobs.wait(orphan, timeout=60) == "done" and jobs.wait(leftover, timeout=60) == "done"


def test_resuming_a_child_of_an_ended_parent_is_refused_naming_the_parent(runs_root, monkeypatch, capsys):
    monkeypatch.setenv("LAB_CHILD_WORKERS", "2")
    parent, child = parent_with_a_queued_child("failed")
    child.write_status("failed", error="killed")
    assert cli.main(["runs", "resume", child.id]) == 1
    error = capsys.readouterr().err
    assert f"started by its parent count {parent.id}" in error and f"resume {parent.id} instead" in error
    assert child.raw_status()["state"] == "failed", "a refused resume changed the run"
    parent.write_status("running", **this_process())  # a parent that runs now starts it itself
    jobs.resume(child)
    assert child.raw_status()["state"] == "queued"
    assert jobs.state_note(child) == f"waits for its parent count {parent.id} to start it"


def test_a_child_made_just_before_its_parent_was_killed_is_adopted_on_resume_not_left_queued(runs_root):
    """Killed between queueing a child and recording it in children.json, the parent on resume finds that child
    (its config names the parent and is the planned one) instead of queueing a second run for the same piece of
    work and leaving the first queued for ever: no child run the parent does not know of."""
    parent = Run.create("count", {"steps": 1})
    planned = {k: (k, {"steps": 1, "delay": 0.0}) for k in "abc"}
    children.create_children(parent, "count", {"a": planned["a"]})
    stray = Run.create("count", {"steps": 1, "delay": 0.0, "parent": str(parent.path)}, name="b")  # then the kill
    made = children.create_children(parent, "count", planned)
    assert made["b"].path == stray.path
    assert sorted(run.path for run in list_runs("count") if run.path != parent.path) == \
        sorted(run.path for run in made.values())
    assert {key: run.path for key, run in children.read_children(parent).items()} == \
        {key: run.path for key, run in made.items()}
