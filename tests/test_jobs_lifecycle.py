"""The job mechanism with real detached worker processes (the `count` self-test job)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from lab import cli
from lab.engine import jobs
from lab.engine.runs import Run, list_runs, process_alive, process_started

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_for(predicate, timeout=30.0, poll=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    raise TimeoutError("condition not reached")


def checkpointed_step(run: Run) -> int:
    path = run.checkpoints / "last.json"
    return json.loads(path.read_text())["step"] if path.exists() else 0


def test_job_runs_to_done_in_a_separate_process(runs_root):
    run = jobs.submit("count", {"steps": 5, "delay": 0.01})
    assert jobs.wait(run, timeout=60) == "done"
    status = run.status()
    assert status["pid"] != os.getpid()
    assert status["progress"]["done"] == 5
    assert json.loads((run.artifacts / "result.json").read_text()) == {"counted": 5}
    assert [e["value"] for e in run.events("progress")] == [1, 2, 3, 4, 5]
    assert run.config == {"steps": 5, "delay": 0.01, "kind": "count"}
    assert "worker ends: done" in run.log_path.read_text()


def test_cancel_stops_the_worker_and_keeps_its_checkpoint(runs_root):
    run = jobs.submit("count", {"steps": 1000, "delay": 0.02})
    wait_for(lambda: checkpointed_step(run) >= 3)
    jobs.cancel(run)
    assert jobs.wait(run, timeout=30) == "cancelled"
    pid = run.status()["pid"]
    wait_for(lambda: not process_alive(pid))
    assert 3 <= checkpointed_step(run) < 1000


def test_cancel_of_a_queued_run_never_starts_it(runs_root):
    first = jobs.submit("count", {"steps": 1000, "delay": 0.02})
    second = jobs.submit("count", {"steps": 3, "delay": 0.01})
    assert second.state == "queued"  # one job at a time by default
    jobs.cancel(second)
    jobs.cancel(first)
    jobs.wait(first, timeout=30)
    assert second.state == "cancelled"
    assert not second.events()


def test_failure_records_message_and_traceback(runs_root):
    run = jobs.submit("count", {"steps": 10, "delay": 0.01, "fail_at": 4})
    assert jobs.wait(run, timeout=60) == "failed"
    assert "asked to fail at step 4" in run.status()["error"]
    log = run.log_path.read_text()
    assert "Traceback" in log and "RuntimeError: asked to fail at step 4" in log


def test_sigkilled_worker_is_reported_dead_and_resumes_from_checkpoint(runs_root):
    run = jobs.submit("count", {"steps": 60, "delay": 0.05})
    wait_for(lambda: checkpointed_step(run) >= 5)
    pid = run.status()["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not process_alive(pid))
    wait_for(lambda: run.state == "failed", timeout=15)  # the liveness check, not the dead worker, says so
    assert "died" in run.status()["error"]
    killed_at = checkpointed_step(run)
    jobs.resume(run)
    assert jobs.wait(run, timeout=60) == "done"
    resume_events = run.events("resume")
    assert resume_events and resume_events[-1]["step"] == killed_at
    values = [e["value"] for e in run.events("progress")]
    assert values[-1] == 60 and values.count(killed_at + 1) == 1  # no step redone after the checkpoint


def test_resume_after_cancel_continues_where_it_stopped(runs_root):
    run = jobs.submit("count", {"steps": 40, "delay": 0.03})
    wait_for(lambda: checkpointed_step(run) >= 4)
    jobs.cancel(run)
    jobs.wait(run, timeout=30)
    stopped_at = checkpointed_step(run)
    jobs.resume(run)
    assert jobs.wait(run, timeout=60) == "done"
    assert run.events("resume")[-1]["step"] == stopped_at
    assert json.loads((run.artifacts / "result.json").read_text()) == {"counted": 40}


def test_queue_runs_one_at_a_time_then_drains(runs_root):
    runs = [jobs.submit("count", {"steps": 4, "delay": 0.05}) for _ in range(3)]
    assert [r.state for r in runs] == ["running", "queued", "queued"]
    for run in runs:
        assert jobs.wait(run, timeout=60) == "done"
    starts = [r.status()["started"] for r in runs]
    ends = [r.status()["finished"] for r in runs]
    assert starts[1] >= ends[0] - 0.5 and starts[2] >= ends[1] - 0.5


def test_concurrency_limit_is_configurable(runs_root, monkeypatch):
    monkeypatch.setenv("LAB_MAX_JOBS", "2")
    runs = [jobs.submit("count", {"steps": 20, "delay": 0.05}) for _ in range(3)]
    assert [r.state for r in runs] == ["running", "running", "queued"]
    for run in runs:
        jobs.cancel(run)
    for run in runs:
        jobs.wait(run, timeout=30)


def test_readers_never_crash_while_a_worker_writes(runs_root):
    run = jobs.submit("count", {"steps": 200, "delay": 0.0})
    errors, seen = [], []

    def read_loop():
        while run.raw_status().get("state") in ("queued", "running"):
            try:
                status = run.status()
                events = run.events("progress")
                seen.append((status.get("state"), len(events)))
                if events:
                    assert events[-1]["value"] == len(events)
            except Exception as e:  # noqa: BLE001 - any exception is the failure under test
                errors.append(e)

    readers = [threading.Thread(target=read_loop) for _ in range(3)]
    for t in readers:
        t.start()
    jobs.wait(run, timeout=60)
    for t in readers:
        t.join()
    assert not errors
    assert len(seen) > 10
    counts = [n for _, n in seen]
    assert max(counts) > 0


def test_torn_last_event_line_is_skipped(runs_root):
    run = Run.create("count", {"steps": 1})
    run.log_event(type="progress", value=1)
    with open(run.path / "events.jsonl", "a") as f:
        f.write('{"type": "progress", "val')
    assert [e["value"] for e in run.events()] == [1]


def test_cli_runs_a_config_and_lists_it(runs_root, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"kind": "count", "steps": 3, "delay": 0.01}))
    env = {**os.environ, "LAB_RUNS_DIR": str(runs_root)}
    done = subprocess.run([sys.executable, "-m", "lab", "run", str(config)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": done" in done.stdout
    listed = subprocess.run([sys.executable, "-m", "lab", "runs"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    (run,) = list_runs(root=runs_root)
    assert run.id in listed.stdout and "done" in listed.stdout
    shown = subprocess.run([sys.executable, "-m", "lab", "runs", "show", run.id[:15]], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert json.loads(shown.stdout)["status"]["state"] == "done"


def test_unknown_job_kind_is_refused_before_anything_is_written(runs_root):
    with pytest.raises(KeyError, match="Unknown job kind"):
        jobs.submit("nope", {})
    assert not list_runs(root=runs_root)


def test_eta_comes_from_the_recent_pace_not_from_start_up(runs_root):
    run = Run.create("count", {"steps": 100})
    run.write_status("running", pid=os.getpid(), pid_start=process_started(os.getpid()),
                     started=time.time() - 1000)  # a slow start-up, or the time before a resume
    run.progress(10, 100, force=True)
    assert run.raw_status()["progress"]["eta_s"] is None  # one report says nothing about the pace yet
    time.sleep(0.3)
    run.progress(20, 100, force=True)
    eta = run.raw_status()["progress"]["eta_s"]
    assert 0 < eta < 100  # 80 more steps at the last steps' pace (~0.03 s each), not 4000 s from the start


def test_a_queued_run_says_where_it_waits_and_a_short_one_can_go_first(runs_root, capsys):
    holder = Run.create("count", {"steps": 1}, name="long")
    holder.write_status("running", pid=os.getpid(), pid_start=process_started(os.getpid()), started=time.time())
    first, second, short = (jobs.submit("count", {"steps": 1, "delay": 0.0}, name=name, start=False)
                            for name in ("first", "second", "short"))
    place = jobs.queue_position(second)
    assert place.position == 2 and place.limit == 1
    assert [r.path for r in place.ahead] == [holder.path, first.path]
    assert jobs.state_note(second) == f"2nd in line behind count {first.id}; one job at a time: LAB_MAX_JOBS=1"
    assert jobs.state_note(first).startswith(f"1st in line behind count {holder.id}")
    assert jobs.queue_position(holder) is None

    assert cli.main(["runs", "front", short.id]) == 0
    assert "1st in line" in capsys.readouterr().out
    assert [jobs.queue_position(r).position for r in (short, first, second)] == [1, 2, 3]
    holder.write_status("done", finished=time.time())
    assert [r.path for r in jobs.schedule()] == [short.path]
    for run in (first, second):
        jobs.cancel(run)
    assert jobs.wait(short, timeout=120) == "done"


def test_a_run_cancelled_while_queued_says_it_never_started(runs_root):
    run = jobs.submit("count", {"steps": 1}, start=False)
    assert jobs.cancel(run) == "cancelled"
    assert jobs.state_note(run) == "cancelled while queued: it never started"


def test_a_max_jobs_setting_that_is_no_number_is_refused_naming_the_variable(runs_root, monkeypatch):
    monkeypatch.setenv("LAB_MAX_JOBS", "abc")
    with pytest.raises(ValueError, match="LAB_MAX_JOBS='abc' is not a whole number"):
        jobs.submit("count", {"steps": 1})
    assert not list_runs(root=runs_root)  # refused before anything is written
    queued = jobs.submit("count", {"steps": 1}, start=False)
    with pytest.raises(ValueError, match="LAB_MAX_JOBS='abc'"):
        jobs.schedule()
    assert queued.state == "queued"
