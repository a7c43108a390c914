"""The worker process: `python -m lab worker <run_dir>` runs one job to its end."""
from __future__ import annotations

import os
import signal
import time
import traceback

from data.hooks import Interrupted
from lab import jobs
from lab.runs import Run, process_start_ticks


def main(run_dir: str) -> int:
    run = Run(run_dir)

    def on_sigterm(signum, frame):
        if run.stop_requested:  # second request: stop now
            raise Interrupted()
        run.stop_requested = True
        print("cancel requested: stopping at the next checkpoint", flush=True)

    signal.signal(signal.SIGTERM, on_sigterm)
    run.write_status("running", pid=os.getpid(), pid_start=process_start_ticks(os.getpid()))
    print(f"[{time.strftime('%H:%M:%S')}] worker {os.getpid()} starts {run.kind} job {run.id}", flush=True)
    code = 0
    try:
        jobs.job_kind(run.kind).run(run)
        run.write_status("done", finished=time.time())
    except Interrupted:
        run.write_status("cancelled", finished=time.time())
        print("cancelled", flush=True)
    except BaseException as e:  # noqa: BLE001 - every failure must reach status.json
        traceback.print_exc()
        run.write_status("failed", error=f"{type(e).__name__}: {e}", finished=time.time())
        code = 1
    finally:
        print(f"[{time.strftime('%H:%M:%S')}] worker ends: {run.raw_status().get('state')}", flush=True)
        jobs.schedule(run.path.parent.parent)
    return code
