"""Child runs side by side: a parent's children run at once in worker processes of their own, each
with its share of the cores, and a failed child stops its running siblings."""
from __future__ import annotations

import os
import time

import pytest

from lab.engine import children, executors, jobs, warm
from lab.engine.runs import Run


def environment_of(pid: int) -> dict[str, str]:
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def record_starts(monkeypatch) -> list[tuple[str, int]]:
    """(run id, threads) of every child worker started, cold or forked by a warm server."""
    started = []
    cold, forked = jobs.start_local_worker, warm.WarmServer.start
    monkeypatch.setattr(jobs, "start_local_worker",
                        lambda run, threads=None: (started.append((run.id, threads)), cold(run, threads)))

    def fork(server, run):
        started.append((run.id, server.threads))
        return forked(server, run)
    monkeypatch.setattr(warm.WarmServer, "start", fork)
    return started


def test_children_run_at_once_in_workers_of_their_own_with_a_share_of_the_cores(runs_root, monkeypatch):
    monkeypatch.setenv("LAB_CHILD_WORKERS", "2")
    monkeypatch.setattr(executors, "cpu_cores", lambda: 4)
    parent = Run.create("count", {"steps": 1})
    plan = {key: (key, {"steps": 40, "delay": 0.05}) for key in "abc"}  # 2 s each: c starts when one ends
    kids = children.create_children(parent, "count", plan)
    seen_env = {}

    def watch():  # every worker was told to use 4 // 2 = 2 threads, the last one too (a fixed share)
        for k in "abc":
            status = kids[k].raw_status()
            if status["state"] == "running" and status.get("pid") and k not in seen_env:
                try:
                    seen_env[k] = environment_of(status["pid"])
                except OSError:  # it ended meanwhile
                    pass
        return len(seen_env) == 3

    import threading

    done = threading.Event()
    driver = threading.Thread(target=lambda: (children.run_children(parent, kids, steps_each=40), done.set()))
    driver.start()
    deadline = time.time() + 60
    while not watch() and time.time() < deadline:
        time.sleep(0.05)
    driver.join(timeout=120)
    assert done.is_set() and [kids[k].state for k in "abc"] == ["done"] * 3
    pids = {k: kids[k].raw_status()["pid"] for k in "abc"}
    assert os.getpid() not in pids.values() and len(set(pids.values())) == 3
    assert {k: (e["OMP_NUM_THREADS"], e["MKL_NUM_THREADS"]) for k, e in seen_env.items()} == {
        k: ("2", "2") for k in "abc"}
    a, b = (kids[k].raw_status() for k in "ab")
    assert a["started"] < b["finished"] and b["started"] < a["finished"], "a and b did not overlap"
    assert parent.raw_status()["progress"]["done"] == 120


def test_a_failed_child_stops_its_running_siblings(runs_root, monkeypatch):
    monkeypatch.setenv("LAB_CHILD_WORKERS", "2")
    parent = Run.create("count", {"steps": 1})
    plan = {"slow": ("slow", {"steps": 2000, "delay": 0.05}), "bad": ("bad", {"steps": 30, "delay": 0.05,
                                                                            "fail_at": 5})}
    kids = children.create_children(parent, "count", plan)
    with pytest.raises(RuntimeError, match=f"count run {kids['bad'].id} failed"):
        children.run_children(parent, kids, steps_each=10)
    deadline = time.time() + 30
    while kids["slow"].state == "running" and time.time() < deadline:
        time.sleep(0.1)
    assert kids["bad"].state == "failed" and kids["slow"].state == "cancelled"


@pytest.mark.parametrize("value, pending, expected", [("3", 8, 3), ("3", 2, 2), ("1", 5, 1), ("0", 5, 1)])
def test_the_setting_caps_the_children_side_by_side(monkeypatch, value, pending, expected):
    monkeypatch.setenv("LAB_CHILD_WORKERS", value)
    assert executors.child_workers(pending) == expected


def test_auto_is_one_per_core_up_to_four_and_a_bad_setting_is_named(monkeypatch):
    monkeypatch.delenv("LAB_CHILD_WORKERS", raising=False)
    monkeypatch.setattr(executors, "cpu_cores", lambda: 16)
    monkeypatch.setattr(executors, "_cuda_available", lambda: False)
    assert executors.child_workers(10) == 4 and executors.child_workers(3) == 3
    monkeypatch.setattr(executors, "_cuda_available", lambda: True)
    assert executors.child_workers(10) == 1
    monkeypatch.setenv("LAB_CHILD_WORKERS", "two")
    with pytest.raises(ValueError, match="LAB_CHILD_WORKERS='two' is not a whole number"):
        executors.child_workers(3)


@pytest.mark.parametrize("warm_workers", ["1", "0"])
def test_a_resumed_parent_runs_its_last_child_with_the_share_it_had(runs_root, monkeypatch, warm_workers):
    monkeypatch.setenv("LAB_WARM_WORKERS", warm_workers)
    monkeypatch.setenv("LAB_CHILD_WORKERS", "2")
    monkeypatch.setattr(executors, "cpu_cores", lambda: 4)
    parent = Run.create("count", {"steps": 1})
    kids = children.create_children(parent, "count", {k: (k, {"steps": 2, "delay": 0.01}) for k in "abc"})
    for k in "ab":  # finished before an interruption
        kids[k].write_status("done")
    started = record_starts(monkeypatch)
    children.run_children(parent, kids, steps_each=2)
    assert started == [(kids["c"].id, 2)] and kids["c"].state == "done"  # its own worker, 4 // 2 threads


@pytest.mark.parametrize("warm_workers", ["1", "0"])
def test_free_slots_leave_children_side_by_side_to_their_parent(runs_root, monkeypatch, warm_workers):
    """With LAB_MAX_JOBS above one, the queue must not start a parent's side-by-side children itself
    (it would give them all the cores), and a finishing child must not judge its parent, which runs
    here and not in a worker, dead."""
    monkeypatch.setenv("LAB_WARM_WORKERS", warm_workers)
    monkeypatch.setenv("LAB_CHILD_WORKERS", "2")
    monkeypatch.setenv("LAB_MAX_JOBS", "4")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(executors, "cpu_cores", lambda: 4)
    parent = Run.create("count", {"steps": 1})
    plan = {key: (key, {"steps": 20, "delay": 0.05}) for key in "abc"}
    kids = children.create_children(parent, "count", plan)
    started = record_starts(monkeypatch)
    children.run_children(parent, kids, steps_each=20)
    assert [kids[k].state for k in "abc"] == ["done"] * 3
    assert sorted(started) == sorted((kids[k].id, 2) for k in "abc"), "a child started without its share"
    assert parent.raw_status()["state"] == "running" and not parent.raw_status().get("dead")
