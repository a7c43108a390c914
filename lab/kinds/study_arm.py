"""Job kind "study-arm": one arm of a study on one seed (a child run of the "study" job).

Config: ArmRunConfig. It trains and tests one arm on one seed (resuming from checkpoints/last.pt) and
writes result.json, composition.json, data_seen.npz and best.pt into artifacts/.
"""
from __future__ import annotations

import numpy as np
import torch

from data.files import atomic_save, atomic_write_json
from lab.engine.runs import Run
from lab.study.arm import train_arm
from lab.study.config import ArmRunConfig

CONFIG = ArmRunConfig


def run(run: Run) -> None:
    config = ArmRunConfig.from_dict(run.settings)
    outcome = train_arm(config, run.hooks(), root=run.path.parent.parent)
    atomic_save(run.artifacts / "data_seen.npz", lambda tmp: np.savez_compressed(tmp, **outcome.seen))
    atomic_write_json(run.artifacts / "composition.json", outcome.composition)
    atomic_save(run.artifacts / "best.pt", lambda tmp: torch.save(outcome.trained.model.state_dict(), tmp))
    atomic_write_json(run.artifacts / "result.json", outcome.result)
    (run.checkpoints / "last.pt").unlink(missing_ok=True)  # the result is final; resume state is not needed
    run.progress(outcome.trained.steps, config.train.steps, message="done", force=True)
