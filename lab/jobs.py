"""The job queue: run directories executed by detached worker processes.

`submit` writes a queued run and calls `schedule`, which starts workers for the oldest queued
runs while fewer than `max_concurrent()` run. A finishing worker calls `schedule` again, so
the queue drains without any resident daemon. The disk is the only shared state.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from data.paths import runs_dir
from lab.runs import ACTIVE_STATES, Run, list_runs, process_start_ticks

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def job_function(kind: str):
    """The adapter that runs a job of `kind` (imported on first use: it loads torch)."""
    from lab.kinds import JOB_KINDS

    if kind not in JOB_KINDS:
        raise KeyError(f"Unknown job kind '{kind}' (known: {', '.join(JOB_KINDS)})")
    return JOB_KINDS[kind]


def max_concurrent() -> int:
    return max(1, int(os.environ.get("LAB_MAX_JOBS", "1")))


def submit(kind: str, config: dict, name: str = "", root: Path | None = None, start: bool = True) -> Run:
    job_function(kind)  # fail now, not in the worker, for an unknown kind
    run = Run.create(kind, config, root=root, name=name)
    if start:
        schedule(root)
    return run


@contextmanager
def queue_lock(root: Path):
    """The queue's lock: held while deciding which queued runs start, so no run starts twice."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".queue.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def schedule(root: Path | None = None) -> list[Run]:
    """Start workers for queued runs while there is room. Returns the runs it started."""
    root = Path(root or runs_dir())
    started = []
    with queue_lock(root):
        runs = list_runs(root=root)
        running = 0
        for run in runs:
            status = run.status()
            if status.get("dead"):  # persist what the liveness check found
                run.write_status("failed", error=status["error"], finished=time.time())
            elif status.get("state") == "running":
                running += 1
        queued = sorted((r for r in runs if r.raw_status().get("state") == "queued"),
                        key=lambda r: r.raw_status().get("queued_at", r.raw_status().get("created", 0)))
        for run in queued[: max(0, max_concurrent() - running)]:
            _start_worker(run)
            started.append(run)
    return started


def _start_worker(run: Run) -> None:
    env = {**os.environ, "LAB_RUNS_DIR": str(run.path.parent.parent), "PYTHONUNBUFFERED": "1"}
    with open(run.log_path, "a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab", "worker", str(run.path)],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    # Reap the child when it exits so a long-lived parent (the app) collects no zombies.
    threading.Thread(target=proc.wait, daemon=True).start()
    status = run.raw_status()
    if status.get("state") != "queued":  # the worker already reported (it can be that fast)
        return
    run.write_status("running", pid=proc.pid, pid_start=process_start_ticks(proc.pid),
                     started=status.get("started", time.time()), resumed=time.time(),
                     done_at_resume=(status.get("progress") or {}).get("done", 0))


def cancel(run: Run) -> str:
    """Stop a run. A queued run is cancelled at once; a running one gets SIGTERM and saves."""
    status = run.status()
    state = status.get("state")
    if state == "queued":
        run.write_status("cancelled", finished=time.time())
    elif state == "running":
        try:
            os.killpg(status["pid"], signal.SIGTERM)
        except ProcessLookupError:
            run.write_status("cancelled", finished=time.time())
    return run.state


def resume(run: Run, root: Path | None = None) -> Run:
    """Queue a cancelled or failed run again; its job continues from checkpoints/last.pt."""
    state = run.state
    if state not in ("cancelled", "failed"):
        raise ValueError(f"Only a cancelled or failed run can be resumed; {run.id} is {state}")
    run.write_status("queued", error=None, dead=None, queued_at=time.time())
    schedule(root or run.path.parent.parent)
    return run


def wait(run: Run, timeout: float | None = None, poll: float = 0.5) -> str:
    """Block until the run leaves queued/running; returns the final state."""
    deadline = None if timeout is None else time.time() + timeout
    while run.state in ACTIVE_STATES:
        if deadline is not None and time.time() > deadline:
            raise TimeoutError(f"{run.id} still {run.state} after {timeout}s")
        time.sleep(poll)
    return run.state


def active_runs(root: Path | None = None) -> list[Run]:
    return [r for r in list_runs(root=root) if r.state in ACTIVE_STATES]
