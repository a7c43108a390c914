"""The `count` job: a tiny job that exercises the whole job mechanism.

It counts to `steps`, sleeping `delay` seconds per step and checkpointing every step, and fails
on purpose at step `fail_at` if asked. Tests use it to prove cancel, failure, SIGKILL and resume
with real worker processes; users can run it to check an installation:
`python -m lab run config.json` with `{"kind": "count", "steps": 10}`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from data.config import MAX_STEPS, Config, option
from data.files import atomic_write_json, read_json
from lab.engine.runs import Run


@dataclass(frozen=True)
class CountConfig(Config):
    steps: int = option(10, label="Steps", min=0, max=MAX_STEPS)
    delay: float = option(0.1, label="Seconds per step", min=0, max=3600)
    fail_at: int | None = option(None, label="Fail at step", min=0, max=MAX_STEPS,
                                 help="raise an error at this step (to test failures)")


CONFIG = CountConfig


def run(run: Run) -> None:
    config = CountConfig.from_dict(run.settings)
    hooks = run.hooks()
    checkpoint = hooks.checkpoints / "last.json"
    start = read_json(checkpoint, {"step": 0})["step"]
    if start:
        hooks.event(type="resume", step=start)
    for step in range(start, config.steps):
        if step == config.fail_at:
            raise RuntimeError(f"asked to fail at step {step}")
        time.sleep(config.delay)
        atomic_write_json(checkpoint, {"step": step + 1})
        hooks.progress(step + 1, config.steps, message="counting", value=step + 1)
        hooks.stop_if_asked()
    atomic_write_json(run.artifacts / "result.json", {"counted": config.steps})
