"""Forged, stale and broken run files never take the lab down or make it lie (issue 11).

Every signal the lab sends in these tests is recorded instead of sent (`recorded_signals`): a
forged status.json can name any process, and on the code before the fix some of them would
have been signalled for real.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from data.config import ConfigError
from gans.train import Diverged, mean_losses
from lab import cli
from lab.engine import children, jobs
from lab.engine.runs import STATES, Run, RunFileError, find_run, list_runs, parse_status, process_started


def wait_for(predicate, timeout=60.0, poll=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    raise TimeoutError("condition not reached")


@contextmanager
def recorded_signals(forward: bool = False):
    """Record every real signal sent through os.kill / os.killpg as (pid or -group, signal); deliver
    them too when `forward`."""
    sent, real_kill, real_killpg = [], os.kill, os.killpg

    def kill(pid, sig):
        if sig != 0:
            sent.append((pid, sig))
        if sig == 0 or forward:
            real_kill(pid, sig)

    def killpg(group, sig):
        sent.append((-group, sig))
        if forward:
            real_killpg(group, sig)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "kill", kill)
        patch.setattr(os, "killpg", killpg)
        yield sent


def forge_running(run: Run, pid, pid_start, **fields) -> None:
    status = {"state": "running", "pid": pid, "pid_start": pid_start, "created": time.time(),
              "started": time.time(), **fields}
    (run.path / "status.json").write_text(json.dumps(status))


def checkpointed_step(run: Run) -> int:
    path = run.checkpoints / "last.json"
    return json.loads(path.read_text())["step"] if path.exists() else 0


@pytest.fixture
def sleeper():
    """Start `sleep 60` (in our process group, or in a session of its own); killed at the end."""
    started = []

    def start(own_session: bool) -> subprocess.Popen:
        proc = subprocess.Popen(["sleep", "60"], start_new_session=own_session)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


# --- process safety ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["init", "init without start time", "a process in our group",
                                  "a stranger in its own session"])
def test_cancel_signals_no_process_it_cannot_prove_is_the_runs_worker(runs_root, sleeper, case):
    run = Run.create("count", {"steps": 1})
    if case == "init":
        forge_running(run, 1, process_started(1))
    elif case == "init without start time":
        forge_running(run, 1, None)
    else:
        proc = sleeper(own_session=case == "a stranger in its own session")
        forge_running(run, proc.pid, process_started(proc.pid))  # fresh "started": no grace period
    with recorded_signals() as sent:
        jobs.cancel(run)
    assert sent == []
    status = run.raw_status()
    assert status["state"] == "failed" and status["dead"] and "not running" in status["error"]


def test_a_forged_status_naming_another_runs_worker_does_not_reach_it(runs_root):
    other = jobs.submit("count", {"steps": 2000, "delay": 0.05})
    wait_for(lambda: checkpointed_step(other) >= 1)
    pid = other.raw_status()["pid"]
    forged = Run.create("count", {"steps": 1})
    forge_running(forged, pid, process_started(pid))
    with recorded_signals() as sent:
        jobs.cancel(forged)
    assert sent == []
    assert forged.state == "failed" and other.state == "running"
    jobs.cancel(other)
    assert jobs.wait(other, timeout=60) == "cancelled"


def test_a_run_in_this_process_is_stopped_by_its_flag_never_by_a_signal(runs_root):
    run = Run.create("count", {"steps": 1})
    forge_running(run, os.getpid(), process_started(os.getpid()))
    assert not run.should_stop()
    with recorded_signals() as sent:
        assert jobs.cancel(run) == "running"  # it stops at its next step
    assert sent == []
    assert Run(run.path).should_stop()  # as the loop's own handle sees it (`run` looked a moment ago)


def test_a_run_on_another_host_without_ray_is_running_elsewhere_and_never_failed_from_here(runs_root, monkeypatch):
    monkeypatch.setenv("LAB_EXECUTOR", "local")
    ended = subprocess.Popen(["true"])
    ended.wait()  # its pid names no process on this machine: the other host's /proc is not ours
    run = Run.create("count", {"steps": 1})
    forge_running(run, ended.pid, 1234, host="node-b.example", executor="local")
    status = run.status()
    assert status["state"] == "running" and not status.get("dead")
    assert jobs.state_note(run) == "running elsewhere (host node-b.example)"
    assert cli.state_line(run) == f"{run.id}: running (running elsewhere (host node-b.example))"
    with recorded_signals() as sent:
        jobs.schedule()
        assert jobs.cancel(run) == "running"  # it stops at its next step, through the shared runs folder
    assert sent == []
    assert run.raw_status()["state"] == "running" and Run(run.path).should_stop()


def test_cancelling_a_child_inside_its_parents_worker_signals_nobody(runs_root):
    parent = jobs.submit("count", {"steps": 2000, "delay": 0.05})
    wait_for(lambda: checkpointed_step(parent) >= 1)
    pid = parent.raw_status()["pid"]
    child = Run.create("count", {"steps": 5, "parent": str(parent.path)})
    forge_running(child, pid, process_started(pid))  # what a child claimed by the parent records
    with recorded_signals() as sent:
        assert jobs.cancel(child) == "running"
    assert sent == []
    assert child.should_stop() and parent.state == "running"
    jobs.cancel(parent)
    assert jobs.wait(parent, timeout=60) == "cancelled"


def test_a_grandchild_inside_its_grandparents_worker_is_running_and_stopped_by_its_flag(runs_root):
    study = jobs.submit("count", {"steps": 2000, "delay": 0.05})  # stands for a study's worker
    wait_for(lambda: checkpointed_step(study) >= 1)
    pid = study.raw_status()["pid"]
    seeds = Run.create("count", {"steps": 5, "parent": str(study.path)})  # a generator child in seeds mode
    seed = Run.create("count", {"steps": 5, "parent": str(seeds.path)})
    forge_running(seed, pid, process_started(pid))  # both execute inside the study's worker
    assert seed.state == "running"
    with recorded_signals() as sent:
        assert jobs.cancel(seed) == "running"
    assert sent == [] and seed.should_stop() and study.state == "running"
    jobs.cancel(study)
    assert jobs.wait(study, timeout=60) == "cancelled"


@pytest.mark.parametrize("side_by_side", [1, 2], ids=["in the parent's process", "in workers of their own"])
def test_a_cancelled_child_leaves_parent_and_siblings_running_and_the_parent_resumes_it(runs_root, monkeypatch,
                                                                                     side_by_side):
    monkeypatch.setenv("LAB_CHILD_WORKERS", str(side_by_side))
    parent = Run.create("count", {"steps": 1})
    plan = {"a": ("a", {"steps": 3, "delay": 0.01}), "b": ("b", {"steps": 400, "delay": 0.02}),
            "c": ("c", {"steps": 3, "delay": 0.01})}
    kids = children.create_children(parent, "count", plan)
    errors = []

    def drive():
        try:
            children.run_children(parent, kids, steps_each=3)
        except Exception as e:  # noqa: BLE001 - the parent's verdict is what the test reads
            errors.append(e)

    driver = threading.Thread(target=drive)
    driver.start()
    wait_for(lambda: checkpointed_step(kids["b"]) >= 3)
    b_pid = kids["b"].raw_status()["pid"]
    with recorded_signals(forward=True) as sent:
        jobs.cancel(kids["b"])
    driver.join(timeout=120)
    assert not driver.is_alive()
    if side_by_side == 1:  # b runs inside this process: its flag stops it, nobody is signalled
        assert sent == [] and b_pid == os.getpid()
    else:  # b runs in a worker of its own: only that worker's process group is signalled
        assert sent == [(-b_pid, signal.SIGTERM)] and b_pid != os.getpid()
    assert [kids[k].state for k in "abc"] == ["done", "cancelled", "done"]
    assert not parent.should_stop()
    (error,) = errors
    assert "cancelled" in str(error) and kids["b"].id in str(error) and "resume" in str(error)

    stopped_at = checkpointed_step(kids["b"])
    children.run_children(parent, kids, steps_each=3)
    assert [kids[k].state for k in "abc"] == ["done", "done", "done"]
    assert kids["b"].events("resume")[-1]["step"] == stopped_at


# --- one bad file never stops the lab -----------------------------------------------------------

UNREADABLE_STATUS = {
    "a list": b"[1]",
    "a bare string": b'"running"',
    "not UTF-8": b'{"state": "\xff\xfe running"}',
    "empty": b"",
    "no state": b"{}",
    "an unknown state": b'{"state": "paused"}',
    "deep nesting": b"[" * 100_000,
    "a text pid": b'{"state": "running", "pid": "abc", "pid_start": 5}',
    "a float pid": b'{"state": "running", "pid": 3.5, "pid_start": 5}',
    "a negative pid": b'{"state": "running", "pid": -4, "pid_start": 5}',
    "a zero pid": b'{"state": "running", "pid": 0, "pid_start": 5}',
    "a text start": b'{"state": "running", "pid": 4242, "started": "yesterday"}',
    "text progress": b'{"state": "running", "progress": "half"}',
    "progress without numbers": b'{"state": "done", "progress": {"done": "3", "total": 4}}',
}


@pytest.mark.parametrize("case", list(UNREADABLE_STATUS))
def test_an_unreadable_status_makes_only_that_run_unreadable(runs_root, case):
    run = Run.create("count", {"steps": 1})
    (run.path / "status.json").write_bytes(UNREADABLE_STATUS[case])
    status = run.status()
    assert status["state"] == "unreadable" and "status.json" in status["error"]
    assert "unreadable" in cli.describe(run) and status["error"] in cli.describe(run)
    with recorded_signals() as sent:
        assert jobs.cancel(run) == "unreadable"
    assert sent == []
    assert jobs.schedule() == []


def test_a_zero_total_or_overshooting_progress_reads_fine(runs_root):
    run = Run.create("count", {"steps": 1})
    run.write_status("done", progress={"done": 3, "total": 0, "message": "", "eta_s": None})
    assert run.status()["state"] == "done"
    assert "done" in cli.describe(run) and "3/0" in cli.progress_line(run.status())


def test_unreadable_runs_never_block_the_queue_or_the_runs_list(runs_root, capsys):
    for content in UNREADABLE_STATUS.values():
        (Run.create("count", {"steps": 1}).path / "status.json").write_bytes(content)
    (Run.create("count", {"steps": 1}).path / "config.json").write_bytes(b"\xff[1]")
    good = jobs.submit("count", {"steps": 2, "delay": 0.01})
    assert jobs.wait(good, timeout=60) == "done"
    assert cli.main(["runs"]) == 0
    listed = capsys.readouterr().out
    unreadable = [line for line in listed.splitlines() if "unreadable" in line]
    assert len(unreadable) == len(UNREADABLE_STATUS) and any("status.json is not UTF-8" in line for line in unreadable)
    assert good.id in listed


def test_events_that_are_not_utf8_or_not_objects_are_skipped(runs_root):
    run = Run.create("count", {"steps": 1})
    run.log_event(type="progress", value=1)
    with open(run.path / "events.jsonl", "ab") as f:
        f.write(b'{"type": "progress", "value": "\xff"}\n[1, 2]\n"text"\n7\nnull\n' + b"[" * 100_000 + b"\n")
    run.log_event(type="progress", value=2)
    assert [e["value"] for e in run.events("progress")] == [1, 2]
    assert len(run.events()) == 2


def test_a_config_that_is_not_an_object_is_named_when_the_job_reads_it(runs_root):
    run = Run.create("count", {"steps": 1})
    (run.path / "config.json").write_text("[1]")
    assert run.kind == "count" and run.config == {}
    with pytest.raises(RunFileError, match="config.json"):
        run.settings


# --- runs outside the runs folder ---------------------------------------------------------------

def test_a_folder_outside_the_runs_folder_is_neither_resumed_nor_cancelled(runs_root, tmp_path, capsys):
    outside = tmp_path / "elsewhere" / "count" / "not-a-run"
    outside.mkdir(parents=True)
    (outside / "config.json").write_text(json.dumps({"kind": "count", "steps": 1}))
    (outside / "status.json").write_text(json.dumps({"state": "failed"}))
    before = sorted(p.name for p in outside.parent.parent.rglob("*"))
    for action in ("resume", "cancel"):
        assert cli.main(["runs", action, str(outside)]) == 1
        assert "not a run in the runs folder" in capsys.readouterr().err
    assert sorted(p.name for p in outside.parent.parent.rglob("*")) == before
    with pytest.raises(LookupError):
        find_run(str(outside))
    inside = Run.create("count", {"steps": 1})
    assert find_run(str(inside.path)).path == inside.path


def test_resume_refuses_a_run_outside_the_runs_folder(runs_root, tmp_path):
    stray = Run.create("count", {"steps": 1}, root=tmp_path / "other-runs")
    stray.write_status("failed")
    with pytest.raises(ValueError, match="not a run in the runs folder"):
        jobs.resume(stray)
    assert stray.state == "failed" and not stray.log_path.exists()


# --- exploding losses ---------------------------------------------------------------------------

def test_exploding_losses_are_divergence_like_nan():
    with pytest.raises(Diverged, match="loss_d"):
        mean_losses([{"loss_d": torch.tensor(5.8e19), "loss_g": torch.tensor(0.7)}], step=40)
    with pytest.raises(Diverged, match="loss_g"):
        mean_losses([{"loss_d": torch.tensor(0.5), "loss_g": torch.tensor(-2e6)}], step=40)
    assert mean_losses([{"loss_d": torch.tensor(1500.0), "loss_g": torch.tensor(-0.25)}], step=40) == {
        "loss_d": 1500.0, "loss_g": -0.25}


# --- configs are built before anything is queued ------------------------------------------------

@pytest.mark.parametrize("kind, config, named", [
    ("count", {"steps": -1}, "steps"),
    ("count", {"stepz": 3}, "stepz"),
    ("count", {"steps": "abc"}, "steps"),
    ("study", {"train_fracton": 1.0}, "train_fracton"),
    ("study", {"train_fraction": 0}, "train_fraction"),
])
def test_submit_refuses_a_bad_config_before_anything_is_written(runs_root, kind, config, named):
    with pytest.raises(ConfigError, match=named):
        jobs.submit(kind, config, start=False)
    assert list_runs(root=runs_root) == []


def test_cli_run_refuses_a_bad_config_json_before_queuing(runs_root, tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"kind": "count", "steps": "abc"}))
    assert cli.main(["run", str(path), "--detach"]) == 1
    assert "steps" in capsys.readouterr().err
    path.write_text("[1]")
    assert cli.main(["run", str(path), "--detach"]) == 1
    assert "config.json" in capsys.readouterr().err
    assert list_runs(root=runs_root) == []


def test_children_are_built_from_their_configs_before_any_is_queued(runs_root):
    parent = Run.create("count", {"steps": 1})
    with pytest.raises(ConfigError, match="steps"):
        children.create_children(parent, "count", {"a": ("a", {"steps": 2}), "b": ("b", {"steps": "x"})})
    assert [r.path for r in list_runs(root=runs_root)] == [parent.path]
    assert not children.children_file(parent).exists()


def test_settings_leave_out_what_the_lab_adds(runs_root):
    parent = Run.create("count", {"steps": 1})
    child = Run.create("count", {"steps": 2, "delay": 0.0, "parent": str(parent.path)})
    assert child.config["kind"] == "count" and child.config["parent"] == str(parent.path)
    assert child.settings == {"steps": 2, "delay": 0.0}


# --- property-based: readers never raise --------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
numbers = st.integers(min_value=-5, max_value=2 ** 70) | st.floats()
status_like = st.fixed_dictionaries(
    {"state": st.sampled_from(STATES) | json_values},
    optional={"pid": numbers | json_values, "pid_start": numbers | json_values, "started": numbers | json_values,
              "created": numbers | json_values, "queued_at": numbers | json_values, "error": json_values,
              "dead": json_values,
              "progress": st.fixed_dictionaries({}, optional={"done": numbers | json_values,
                                                              "total": numbers | json_values,
                                                              "message": json_values,
                                                              "eta_s": numbers | json_values}) | json_values})
status_bytes = st.binary(max_size=120) | json_values.map(lambda v: json.dumps(v).encode()) \
    | status_like.map(lambda v: json.dumps(v).encode())


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=status_bytes)
@example(data=b'{"state":"done","dead":true}')  # cancel once read "dead" as "failed, with an error"
def test_status_readers_never_raise(runs_root, data):
    run = Run(runs_root / "count" / "fuzz")
    run.path.mkdir(parents=True, exist_ok=True)
    (run.path / "config.json").write_text('{"kind": "count"}')
    (run.path / "status.json").write_bytes(data)
    parsed = parse_status(data)
    assert parsed["state"] in (*STATES, "unreadable")
    status = run.status()
    assert status["state"] in (*STATES, "unreadable")
    assert isinstance(cli.describe(run), str) and isinstance(cli.progress_line(status), str)
    assert isinstance(jobs.state_note(run), str)
    with recorded_signals() as sent:
        jobs.cancel(run)
    assert sent == []


event_lines = st.lists(st.binary(max_size=40) | json_values.map(lambda v: json.dumps(v).encode())
                       | json_values.map(lambda v: json.dumps({"type": "progress", "value": v}).encode()),
                       max_size=8)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=event_lines)
def test_event_readers_never_raise(runs_root, lines):
    run = Run(runs_root / "count" / "fuzz-events")
    run.path.mkdir(parents=True, exist_ok=True)
    (run.path / "events.jsonl").write_bytes(b"\n".join(lines))
    assert all(isinstance(e, dict) for e in run.events())
    assert all(e["type"] == "progress" for e in run.events("progress"))


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=status_bytes)
def test_config_readers_never_raise_anything_but_the_labs_error(runs_root, data):
    run = Run(runs_root / "count" / "fuzz-config")
    run.path.mkdir(parents=True, exist_ok=True)
    (run.path / "config.json").write_bytes(data)
    (run.path / "status.json").write_text('{"state": "queued"}')
    assert isinstance(run.kind, str) and isinstance(run.config, dict) and isinstance(cli.describe(run), str)
    try:
        assert isinstance(run.settings, dict)
    except RunFileError as e:
        assert "config.json" in str(e)
