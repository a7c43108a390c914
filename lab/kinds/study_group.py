"""Job kind "study-group": several (arm, seed)s of a study trained as one batched computation (a child run
of the "study" job when StudyConfig.batched is in effect; classifier/batched.py).

Config: ArmGroupRunConfig. Member k's files (those a study-arm run writes: result.json, composition.json,
data_seen.npz, best.pt) go to artifacts/member-<k>/; its events carry `member: k`. The group resumes
from checkpoints/group.pt.
"""
from __future__ import annotations

from classifier.batched import CHECKPOINT
from lab.engine.runs import Run
from lab.study.arm import save_outcome, train_arms
from lab.study.arm_runs import member_folder
from lab.study.config import ArmGroupRunConfig

CONFIG = ArmGroupRunConfig


def run(run: Run) -> None:
    config = ArmGroupRunConfig.from_dict(run.settings)
    outcomes = train_arms(config.members, run.hooks(), root=run.path.parent.parent)
    for k, outcome in enumerate(outcomes):
        save_outcome(outcome, member_folder(run, k))
    (run.checkpoints / CHECKPOINT).unlink(missing_ok=True)  # the results are final; resume state is not needed
    steps = config.members[0].train.steps
    run.progress(steps, steps, message="done", force=True)
