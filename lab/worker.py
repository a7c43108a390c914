"""The worker process: `python -m lab worker <run_dir>` runs one job to its end.

Under the Ray executor the worker is the child of a Ray task's process (lab.executors.run_worker),
which names itself in LAB_RAY_TASK_PID. When that process is gone (killed, or its node going
down) Ray has released the job's resources and no one would hear of its end: the worker then
stops at its next step, saves its checkpoint and ends failed, resumable.
"""
from __future__ import annotations

import os
import signal
import threading
import time
import traceback

from data.hooks import Interrupted
from lab import jobs
from lab.executors import TASK_PID_VAR
from lab.runs import HOST, RAY_NODE_VAR, Run, this_process

TASK_POLL_S = 1.0  # how often a worker under Ray checks that its task's process is still there


def main(run_dir: str) -> int:
    run = Run(run_dir)
    task_gone = threading.Event()

    def on_sigterm(signum, frame):
        if run.stop_requested:  # second request: stop now
            raise Interrupted()
        run.stop_requested = True
        print("cancel requested: stopping at the next checkpoint", flush=True)

    signal.signal(signal.SIGTERM, on_sigterm)
    if os.environ.get(TASK_PID_VAR):
        watch_task(run, int(os.environ[TASK_PID_VAR]), task_gone)
    run.write_status("running", **this_process())
    print(f"[{time.strftime('%H:%M:%S')}] worker {os.getpid()} starts {run.kind} job {run.id}", flush=True)
    code = 0
    try:
        jobs.job_kind(run.kind).run(run)
        run.write_status("done", finished=time.time())
    except Interrupted:
        if task_gone.is_set():
            run.write_status("failed", finished=time.time(),
                             error=f"its Ray task's process {os.environ[TASK_PID_VAR]} on Ray node "
                                   f"{os.environ.get(RAY_NODE_VAR)} (host {HOST}) ended: killed, or its node went "
                                   f"down; resume it to continue from its last checkpoint")
        else:
            run.write_status("cancelled", finished=time.time())
        print(run.raw_status()["state"], flush=True)
    except BaseException as e:  # noqa: BLE001 - every failure must reach status.json
        traceback.print_exc()
        run.write_status("failed", error=f"{type(e).__name__}: {e}", finished=time.time())
        code = 1
    finally:
        print(f"[{time.strftime('%H:%M:%S')}] worker ends: {run.raw_status().get('state')}", flush=True)
        if not jobs.started_by_parent(run):  # the parent's slot covers its children; it starts the next
            jobs.schedule(run.path.parent.parent)
    return code


def watch_task(run: Run, task_pid: int, task_gone: threading.Event) -> None:
    """Ask the run to stop, and set `task_gone`, once this process's parent is no longer `task_pid`."""
    def watch():
        while os.getppid() == task_pid:
            time.sleep(TASK_POLL_S)
        print(f"the Ray task's process {task_pid} is gone: stopping at the next checkpoint", flush=True)
        task_gone.set()
        run.stop_requested = True

    threading.Thread(target=watch, daemon=True).start()
