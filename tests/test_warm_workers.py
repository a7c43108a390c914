"""Warm workers (lab/engine/warm.py): a parent's child runs side by side are forked from a server already past
the heavy imports, and each forked worker keeps every guarantee of a cold one: proven from /proc as its run's
worker, a process group of its own that cancel's SIGTERM reaches (it saves and ends cancelled), kill -9 losing
only the steps since its checkpoint, and the numbers a cold worker computes at the same thread count."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
import pytest

from data.files import read_json
from lab.engine import children, jobs, warm
from lab.engine.runs import Run, locate, process_alive
from lab.study.config import ArmConfig, StudyConfig, arm_runs
from tests.test_jobs_lifecycle import checkpointed_step, wait_for

ROOT = Path(__file__).resolve().parent.parent


def side_by_side(monkeypatch, warm_workers: str = "1") -> None:
    monkeypatch.setenv("LAB_WARM_WORKERS", warm_workers)
    monkeypatch.setenv("LAB_CHILD_WORKERS", "2")


def drive(parent: Run, kids: dict[str, Run], steps_each: int) -> tuple[threading.Thread, list]:
    """run_children in a thread, as a parent's worker would; the list gets its error, if any."""
    errors = []

    def go():
        try:
            children.run_children(parent, kids, steps_each=steps_each)
        except BaseException as e:  # noqa: BLE001 - the test reads it
            errors.append(e)

    driver = threading.Thread(target=go)
    driver.start()
    return driver, errors


def parent_pid(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])


def test_a_forked_worker_is_proven_its_runs_worker_and_a_cancel_reaches_it_alone(runs_root, monkeypatch):
    side_by_side(monkeypatch)
    parent = Run.create("count", {"steps": 1})
    kids = children.create_children(parent, "count", {k: (k, {"steps": 2000, "delay": 0.02}) for k in "ab"})
    driver, errors = drive(parent, kids, steps_each=2000)
    wait_for(lambda: all(checkpointed_step(kid) >= 3 for kid in kids.values()), timeout=60)
    status_a, status_b = (kid.raw_status() for kid in kids.values())
    server = parent_pid(status_a["pid"])
    assert parent_pid(status_b["pid"]) == server != os.getpid(), "not forked by one warm server"
    assert b"lab.cli.warm" in open(f"/proc/{server}/cmdline", "rb").read()
    assert locate(kids["a"], status_a) == "worker" and locate(kids["b"], status_b) == "worker"
    assert locate(kids["a"], status_b) is None, "a forked worker passed for another run's"
    assert os.getpgid(status_a["pid"]) == status_a["pid"] != os.getpgid(status_b["pid"])

    jobs.cancel(kids["a"])  # SIGTERM to a's process group only
    assert jobs.wait(kids["a"], timeout=30) == "cancelled"
    assert 3 <= checkpointed_step(kids["a"]) < 2000 and "cancel requested" in kids["a"].log_path.read_text()
    assert kids["b"].state == "running" and process_alive(server), "the cancel reached more than its run"
    jobs.cancel(kids["b"])
    driver.join(timeout=60)
    assert not driver.is_alive() and errors and "were cancelled" in str(errors[0])
    wait_for(lambda: not process_alive(server), timeout=30)  # the parent ended: its server with it


def test_a_killed_forked_worker_is_reported_dead_and_resumes_from_its_checkpoint(runs_root, monkeypatch):
    side_by_side(monkeypatch)
    parent = Run.create("count", {"steps": 1})
    kids = children.create_children(parent, "count", {k: (k, {"steps": 40, "delay": 0.05}) for k in "ab"})
    driver, errors = drive(parent, kids, steps_each=40)
    wait_for(lambda: checkpointed_step(kids["a"]) >= 5, timeout=60)
    pid = kids["a"].raw_status()["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not process_alive(pid))
    driver.join(timeout=60)
    assert errors and "died" in str(errors[0]) and kids["a"].state == "failed"
    killed_at = checkpointed_step(kids["a"])

    children.run_children(parent, kids, steps_each=40)  # the parent resumed: a is queued again and finishes
    assert [kid.state for kid in kids.values()] == ["done", "done"]
    assert kids["a"].events("resume")[-1]["step"] == killed_at
    values = [e["value"] for e in kids["a"].events("progress")]
    assert values[-1] == 40 and values.count(killed_at + 1) == 1  # no step redone after the checkpoint


def arm_numbers(kids: dict[str, Run]) -> dict[str, dict]:
    return {key: {name: value for name, value in read_json(kid.artifacts / "result.json").items()
                  if name != "train_seconds"} for key, kid in kids.items()}


def test_a_forked_arm_computes_exactly_what_a_cold_worker_does(runs_root, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    study = StudyConfig(dataset={"name": "pneumoniamnist", "size": 28}, train_fraction=0.02, seeds=[0],
                        arms=[ArmConfig("real only"), ArmConfig("flips", "standard_aug")],
                        train={"steps": 6, "batch_size": 16, "eval_every": 3})
    numbers, servers = {}, []
    real_start = warm.WarmServer.start
    monkeypatch.setattr(warm.WarmServer, "start", lambda server, run: servers.append(run.id) or real_start(server, run))
    for warm_workers in ("0", "1"):
        side_by_side(monkeypatch, warm_workers)
        parent = Run.create("count", {"steps": 1})
        kids = children.create_children(parent, "study-arm", arm_runs(study))
        children.run_children(parent, kids, steps_each=6)
        numbers[warm_workers] = arm_numbers(kids)
        assert {kid.raw_status()["executor"] for kid in kids.values()} == {"local"}
    assert len(servers) == 2, "the warm pass did not fork its arms"
    assert numbers["1"] == numbers["0"]
    assert {n["threads"] for n in numbers["1"].values()} == {max(1, len(os.sched_getaffinity(0)) // 2)}


@pytest.mark.parametrize("value, expected", [("", True), ("1", True), ("0", False), (" 0 ", False)])
def test_warm_workers_are_on_unless_turned_off(monkeypatch, value, expected):
    monkeypatch.setenv("LAB_WARM_WORKERS", value)
    assert warm.enabled() is expected


def test_a_server_that_cannot_start_leaves_its_runs_to_cold_workers(runs_root, monkeypatch, capfd):
    side_by_side(monkeypatch)
    monkeypatch.setattr(warm, "WARM_SERVER_MODULE", "lab.no_such_module")
    cold = []
    real_start = jobs.start_local_worker
    monkeypatch.setattr(jobs, "start_local_worker", lambda run, threads=None: (cold.append(run.id),
                                                                                real_start(run, threads)))
    parent = Run.create("count", {"steps": 1})
    kids = children.create_children(parent, "count", {k: (k, {"steps": 2, "delay": 0.01}) for k in "ab"})
    children.run_children(parent, kids, steps_each=2)
    assert [kid.state for kid in kids.values()] == ["done", "done"]
    assert sorted(cold) == sorted(kid.id for kid in kids.values())
    assert "starting cold workers" in capfd.readouterr().err


def test_a_worker_no_local_executor_started_records_its_process_start(runs_root):
    """As a Ray task starts one: `python -m lab worker <run dir>` for a queued run nobody marked running. Its
    status says when its process started, so its seconds count its start-up as a local worker's do."""
    run = Run.create("count", {"steps": 1, "delay": 0.0})
    before = time.time()
    subprocess.run([sys.executable, "-m", "lab", "worker", str(run.path)], cwd=ROOT, check=True, timeout=120,
                   capture_output=True)
    status = run.raw_status()
    assert status["state"] == "done" and "started" in status, "no start recorded"
    assert before - 0.05 <= status["started"] <= min(event["t"] for event in run.events())
