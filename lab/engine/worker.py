"""The worker process: `python -m lab worker <run_dir>` runs one job to its end.

Under the Ray executor the worker is the child of a Ray task's process (lab.engine.executors.run_worker),
which names itself in LAB_RAY_TASK_PID. When that process is gone (killed, or its node going
down) Ray has released the job's resources and no one would hear of its end: the worker then
stops at its next step, saves its checkpoint and ends failed, resumable, with an error naming its
node (lost, when the node's raylet ended too). Under Ray the worker leaves starting the next
queued runs to the dispatcher, which does it once the task has ended and its CPU is free.

A full disk must not leave a run "running" with nothing said: the worker holds RESERVE_BYTES in the
run directory (RESERVE_FILE) while the job runs and deletes that file to make room for the run's
last status write and the end of its log. Held space keeps status.json's write atomic (a temporary
file, then a rename), where rewriting it in place would let a reader see half a file.
"""
from __future__ import annotations

import errno
import os
import signal
import threading
import time
import traceback
from pathlib import Path

from data.hooks import Interrupted
from lab.engine import jobs
from lab.engine.executors import TASK_PID_VAR, task_gone_error
from lab.engine.runs import ACTIVE_STATES, Run, process_start_time, this_process

TASK_POLL_S = 1.0  # how often a worker under Ray checks that its task's process is still there
RESERVE_FILE = ".space_reserve"  # held in the run directory while the job runs, deleted when it ends
RESERVE_BYTES = 64 * 1024  # room for status.json's temporary file and the log's last lines, in 4 KiB blocks
MAX_CAUSES = 16  # how far `disk_full` follows an error's causes (a chain can loop)


def main(run_dir: str) -> int:
    run = Run(run_dir)
    task_gone = threading.Event()

    def on_sigterm(signum, frame):
        if run.stop_requested:  # second request: stop now
            raise Interrupted()
        run.stop_requested = True
        say("cancel requested: stopping at the next checkpoint")

    signal.signal(signal.SIGTERM, on_sigterm)
    if os.environ.get(TASK_PID_VAR):
        watch_task(run, int(os.environ[TASK_PID_VAR]), task_gone)
    code = 0
    try:
        hold_space(run)
        # A worker no local executor started (a Ray task's) records its start itself: its process's, so a run's
        # seconds count its start-up wherever it ran.
        started = run.raw_status().get("started") or process_start_time(os.getpid()) or time.time()
        run.write_status("running", **this_process(), started=started)
        say(f"[{time.strftime('%H:%M:%S')}] worker {os.getpid()} starts {run.kind} job {run.id}")
        jobs.job_kind(run.kind).run(run)
        end(run, "done")
    except Interrupted:
        if task_gone.is_set():
            end(run, "failed", error=task_gone_error(int(os.environ[TASK_PID_VAR])))
        else:
            end(run, "cancelled")
        say(run.raw_status()["state"])
    except BaseException as e:  # noqa: BLE001 - every failure must reach status.json
        code = 1
        record_failure(run, e)
    finally:
        release_space(run)
        status = run.raw_status()
        say(f"[{time.strftime('%H:%M:%S')}] worker ends: {status.get('state')}"
            + (f": {status.get('error')}" if status.get("state") == "failed" else ""))
        # A parent that has ended (failed, cancelled) frees its slot; one that says it is running holds it
        # for its children. Its raw status, not its liveness: this process cannot prove a parent executing in a
        # process that is not a worker (a test, a notebook), and would mark it dead.
        parent = jobs.side_by_side_parent(run)
        under_ray = bool(os.environ.get(TASK_PID_VAR))  # the dispatcher starts the next runs after the task
        if not under_ray and (parent is None or parent.raw_status()["state"] not in ACTIVE_STATES):
            start_next(run)
    return code


def hold_space(run: Run) -> None:
    """Take RESERVE_BYTES of the run's disk for its last writes (random bytes: a compressing file system
    would store zeros in no space at all)."""
    with open(run.path / RESERVE_FILE, "wb") as f:
        f.write(os.urandom(RESERVE_BYTES))
        f.flush()
        os.fsync(f.fileno())


def release_space(run: Run) -> None:
    (run.path / RESERVE_FILE).unlink(missing_ok=True)


def end(run: Run, state: str, **fields) -> None:
    """Write the run's final state into the space held for it."""
    release_space(run)
    run.write_status(state, finished=time.time(), **fields)


def record_failure(run: Run, error: BaseException) -> None:
    """The run ends failed with what went wrong in status.json, then its traceback in the log."""
    try:
        end(run, "failed", error=failure(error, run))
    except OSError as e:  # even the held space was taken (by another process)
        say(f"status.json could not record the failure: {e}")
    try:
        traceback.print_exc()
    except OSError:  # the log's disk is full
        pass


def start_next(run: Run) -> None:
    """Start the runs queued in this run's runs folder, as far as the slots allow."""
    try:
        jobs.schedule(run.path.parent.parent)
    except OSError as e:  # a full disk: the next worker could not even write its status
        say(f"the next queued run could not be started: {e}")


def failure(error: BaseException, run: Run) -> str:
    """status.json's error for a job that raised `error`: "no space left on device (<run dir>)" when the
    disk is full, else the error's type and message."""
    if disk_full(error, run.path):
        return f"no space left on device ({run.path})"
    return f"{type(error).__name__}: {error}"


def disk_full(error: BaseException, path: Path) -> bool:
    """True when `error` comes from a full disk: ENOSPC in its chain of causes, or (torch reports a failed
    write as a RuntimeError) less room left on `path`'s file system than the space held for this run."""
    cause: BaseException | None = error
    for _ in range(MAX_CAUSES):
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return True
        cause = cause.__cause__ or cause.__context__
    try:
        stats = os.statvfs(path)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < RESERVE_BYTES


def say(line: str) -> None:
    """Print a line to the run's log; a log on a full disk loses it rather than the worker's last writes."""
    try:
        print(line, flush=True)
    except OSError:
        pass


def watch_task(run: Run, task_pid: int, task_gone: threading.Event) -> None:
    """Ask the run to stop, and set `task_gone`, once this process's parent is no longer `task_pid`."""
    def watch():
        while os.getppid() == task_pid:
            time.sleep(TASK_POLL_S)
        print(f"the Ray task's process {task_pid} is gone: stopping at the next checkpoint", flush=True)
        task_gone.set()
        run.stop_requested = True

    threading.Thread(target=watch, daemon=True).start()
