"""Job kinds "study" and "study-arm": the augmentation study and one (arm, seed) of it.

"study" config: StudyConfig. It queues one study-arm child per (arm, seed), drives them to the
end, and writes report.csv, results.csv, report.html and, last, summary.json into artifacts/.
"study-arm" config: ArmRunConfig. It trains and tests one arm on one seed (resuming from
checkpoints/last.pt) and writes result.json, composition.json, data_seen.npz and best.pt.
"""
from __future__ import annotations

import numpy as np
import torch

from data.datasets import load_dataset
from data.files import atomic_save, atomic_write_json, read_json
from lab.children import create_children, run_children
from lab.runs import Run
from lab.study import (ArmRunConfig, StudyConfig, arm_runs, check_synthetic_sets, summarize, train_arm,
                       write_summary)
from lab.study_report import write_report

RUN_KEYS = ("kind", "parent")  # what the run machinery adds to a config.json


def settings(run: Run) -> dict:
    """The job's own settings: the run's config without the keys the run machinery adds."""
    return {k: v for k, v in run.config.items() if k not in RUN_KEYS}


def run_arm(run: Run) -> None:
    config = ArmRunConfig.from_dict(settings(run))
    outcome = train_arm(config, run.hooks())
    atomic_save(run.artifacts / "data_seen.npz", lambda tmp: np.savez_compressed(tmp, **outcome.seen))
    atomic_write_json(run.artifacts / "composition.json", outcome.composition)
    atomic_save(run.artifacts / "best.pt", lambda tmp: torch.save(outcome.trained.model.state_dict(), tmp))
    atomic_write_json(run.artifacts / "result.json", outcome.result)
    (run.checkpoints / "last.pt").unlink(missing_ok=True)  # the result is final; resume state is not needed
    run.progress(outcome.trained.steps, config.train.steps, message="done", force=True)


def run_study(run: Run) -> None:
    study = StudyConfig.from_dict(settings(run))
    data = load_dataset(study.dataset)
    check_synthetic_sets(study, data.train)
    plan = arm_runs(study)
    children = create_children(run, "study-arm", plan)
    run_children(run, children, study.train.steps, describe=lambda key: key.replace("|", " · seed "))
    total = len(plan) * study.train.steps
    run.progress(total, total, message="aggregating", force=True)
    results = [read_json(child.artifacts / "result.json") for child in children.values()]
    summary = summarize(study, results, data.class_names, study_run=str(run.path))
    write_report(run.artifacts, summary, results)
    write_summary(run.artifacts, summary)  # last: its presence means the study is complete
