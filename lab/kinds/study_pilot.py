"""Job kind "study-pilot": a learning-curve pilot of a study's baseline (lab/study/pilot.py).

Config: PilotConfig. It trains the baseline over the ladder of budgets until one clears the trivial classifier
(resuming from checkpoints/), and writes pilot.json into artifacts/: every budget tried, and the one to use.
A job of its own rather than a step of the study: it is offered when a study cannot judge (or before one, to
size it), and the person decides whether its minutes are worth spending.
"""
from __future__ import annotations

from lab.engine.runs import Run
from lab.study.pilot import PilotConfig, run_pilot, write_pilot

CONFIG = PilotConfig


def run(run: Run) -> None:
    result = run_pilot(PilotConfig.from_dict(run.settings), run.hooks(), scratch=run.checkpoints)
    write_pilot(run.artifacts, result)
    run.progress(1, 1, message=result.text, force=True)
