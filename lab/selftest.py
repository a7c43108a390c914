"""A tiny job that exercises the whole job mechanism: `python -m lab run` with kind "count".

It counts to `steps`, sleeping `delay` seconds per step, checkpointing every step, and fails
on purpose at `fail_at` if asked. Tests use it to prove cancel, failure, SIGKILL and resume
with real worker processes; users can use it to check an installation.
"""
from __future__ import annotations

import json
import time

from lab.runs import Cancelled, Run, atomic_write_json


def count_job(run: Run) -> None:
    config = run.config
    steps, delay, fail_at = int(config.get("steps", 10)), float(config.get("delay", 0.1)), config.get("fail_at")
    checkpoint = run.checkpoints / "last.json"
    start = json.loads(checkpoint.read_text())["step"] if checkpoint.exists() else 0
    if start:
        run.log_event(type="resume", step=start)
    for step in range(start, steps):
        if fail_at is not None and step == int(fail_at):
            raise RuntimeError(f"asked to fail at step {step}")
        time.sleep(delay)
        atomic_write_json(checkpoint, {"step": step + 1})
        run.progress(step + 1, steps, message="counting", value=step + 1)
        if run.stop_requested:
            raise Cancelled()
    atomic_write_json(run.artifacts / "result.json", {"counted": steps})
