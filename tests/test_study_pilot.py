"""The learning-curve pilot (lab/study/pilot.py): a study whose baseline cannot beat the trivial classifier is told
the smallest budget at which it does, as flags that make a valid study config."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data.config import ConfigError
from data.datasets import DatasetSpec
from data.hooks import NO_HOOKS
from lab.engine import jobs
from lab.engine.runs import Run, list_runs
from lab.kinds.study import run as run_study
from lab.kinds.study_pilot import run as run_pilot_job
from lab.study.config import ArmConfig, StudyConfig
from lab.study.pilot import Budget, PilotConfig, apply_budget, budgets, read_pilot, run_pilot

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "pages" / "study.py"
FEW_IMAGES = 0.0115  # 54 of PneumoniaMNIST's 4,708 training images
TINY = {"dataset": {"name": "pneumoniamnist", "size": 28}, "train_fraction": FEW_IMAGES, "seeds": [0, 1],
        "train": {"steps": 10, "batch_size": 16, "eval_every": 5, "device": "cpu"}}


def lab_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_ladder_climbs_from_the_studys_own_budget_cheapest_first():
    study = StudyConfig.from_dict({**TINY, "train_fraction": 0.2})
    ladder = budgets(PilotConfig(study=study, max_steps=100))
    assert ladder[0] == Budget(10, 0.2)
    assert [(b.steps, b.fraction) for b in ladder] == [(10, 0.2), (10, 0.6), (10, 1.0), (40, 0.2), (40, 0.6), (40, 1.0)]
    bigger = apply_budget(study, Budget(40, 0.6))
    assert bigger == study.replace(train_fraction=0.6, train=study.train.replace(steps=40, eval_every=20))
    with pytest.raises(ConfigError, match="PilotConfig.seeds"):
        PilotConfig(study=study, seeds=3)
    fixed_only = study.replace(arms=[ArmConfig("set", "synthetic", "/x/set.npz")])
    with pytest.raises(ConfigError, match="a real-only arm"):
        PilotConfig(study=fixed_only)


def test_a_study_that_cannot_judge_gets_a_larger_budget_that_clears_as_flags_of_a_valid_study(tmp_path, monkeypatch):
    """54 images and 10 steps: the baseline predicts the majority class. The pilot climbs to 160 steps, where it
    clears the trivial classifier on the validation split, and the flags it names make exactly that study."""
    study = StudyConfig.from_dict(TINY)
    pilot = PilotConfig(study=study, seeds=1, step_factors=[1, 16], fraction_factors=[1])
    result = run_pilot(pilot, NO_HOOKS, scratch=tmp_path / "scratch")
    first, last = result.tried[0], result.tried[-1]
    assert (first["steps"], first["images"]) == (10, 54) and "not clearly above the trivial" in first["short_of"]
    assert result.budget == Budget(160, FEW_IMAGES) and last["short_of"] == ""
    assert last["metric"]["mean"] > last["trivial"] and last["accuracy"] >= last["majority_rate"]
    assert "--steps 160 --fraction 0.0115" in result.text

    config_file = tmp_path / "study.json"
    config_file.write_text(json.dumps(TINY))
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    printed = lab_cli("study", str(config_file), *result.budget.flags.split(), "--print-config")
    assert printed.returncode == 0, printed.stderr
    assert StudyConfig.from_dict(json.loads(printed.stdout)) == apply_budget(study, result.budget)


def test_the_cli_runs_the_pilot_as_a_job_and_prints_the_flags(tmp_path, monkeypatch):
    config_file = tmp_path / "study.json"
    config_file.write_text(json.dumps({**TINY, "train": {**TINY["train"], "steps": 160, "eval_every": 80}}))
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    done = lab_cli("study", str(config_file), "--pilot", "--pilot-seeds", "1")
    assert done.returncode == 0, done.stderr
    assert "flags: --steps 160 --fraction 0.0115" in done.stdout
    (run_dir,) = (tmp_path / "runs" / "study-pilot").iterdir()
    result = read_pilot(run_dir / "artifacts")
    assert result.budget == Budget(160, FEW_IMAGES) and len(result.tried) == 1


def test_the_study_page_applies_the_pilots_budget_at_the_batch_size_it_was_measured_at(runs_root, monkeypatch):
    """A finished study that cannot judge and its finished pilot: "Apply this budget" fills the New study form with
    the pilot's steps, fraction and batch size (the quick preset's batch at 54 images is 54, the study's 16), the
    study it launches trains exactly as the pilot measured, and "Forget the applied budget" gives the preset back."""
    from streamlit.testing.v1 import AppTest

    study = StudyConfig.from_dict(TINY)
    study_run = Run.create("study", study.to_dict(), root=runs_root)
    run_study(study_run)
    study_run.write_status("done")
    pilot = PilotConfig(study=study, seeds=1, step_factors=[1, 16], fraction_factors=[1], study_run=str(study_run.path))
    pilot_run = Run.create("study-pilot", pilot.to_dict(), root=runs_root)
    run_pilot_job(pilot_run)
    pilot_run.write_status("done")
    measured = apply_budget(study, Budget(160, FEW_IMAGES))
    assert read_pilot(pilot_run.artifacts).budget == Budget(160, FEW_IMAGES)

    def form() -> tuple:
        values = {w.label: w.value for w in at.number_input}
        return values["Optimizer steps per arm"], values["Real training fraction"], values["Batch size"]

    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])  # queue only: the launched study is read, not run
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.session_state["dataset_spec"] = DatasetSpec(name="pneumoniamnist")
    at.session_state["study_run"] = study_run.id
    at.run()
    assert not at.exception, at.exception
    preset_form = form()
    assert preset_form[2] != 16, "the quick preset's batch must differ from the study's, or this test proves nothing"
    next(b for b in at.button if b.label == "Apply this budget").click().run()
    assert not at.exception, at.exception
    assert form() == (160, FEW_IMAGES, 16)
    assert any(pilot_run.id in c.value and "160 steps" in c.value for c in at.caption), [c.value for c in at.caption]

    next(b for b in at.button if b.label == "Launch study").click().run()
    assert not at.exception, at.exception
    (launched,) = [r for r in list_runs("study", runs_root) if r.id != study_run.id]
    config = StudyConfig.from_dict(launched.settings)
    assert (config.train_fraction, config.train, config.primary_metric) == \
        (measured.train_fraction, measured.train, measured.primary_metric)

    at.session_state["dataset_spec"] = DatasetSpec(name="dermamnist")
    at.run()
    assert any("measured on pneumoniamnist" in w.value for w in at.warning), "not applied on another dataset"
    assert form()[2] != 16
    at.session_state["dataset_spec"] = DatasetSpec(name="pneumoniamnist")
    at.run()
    assert form() == (160, FEW_IMAGES, 16)

    next(b for b in at.button if b.label == "Forget the applied budget").click().run()
    assert not at.exception, at.exception
    assert form() == preset_form and not any("Forget the applied budget" == b.label for b in at.button)
