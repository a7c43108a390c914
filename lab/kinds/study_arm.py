"""Job kind "study-arm": one arm of a study on one seed (a child run of the "study" job).

Config: ArmRunConfig. It trains and tests one arm on one seed (resuming from checkpoints/last.pt) and
writes result.json, composition.json, data_seen.npz and best.pt into artifacts/.
"""
from __future__ import annotations

from lab.engine.runs import Run
from lab.study.arm import save_outcome, train_arm
from lab.study.config import ArmRunConfig

CONFIG = ArmRunConfig


def run(run: Run) -> None:
    config = ArmRunConfig.from_dict(run.settings)
    outcome = train_arm(config, run.hooks(), root=run.path.parent.parent)
    save_outcome(outcome, run.artifacts)
    (run.checkpoints / "last.pt").unlink(missing_ok=True)  # the result is final; resume state is not needed
    run.progress(outcome.trained.steps, config.train.steps, message="done", force=True)
