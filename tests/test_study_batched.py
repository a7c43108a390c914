"""A study whose (arm, seed)s train batched (StudyConfig.batched, one study-group child run) against the same
study trained one (arm, seed) at a time: every member draws exactly the images its own run draws (the
fingerprints in data_seen.npz), evaluates at the same steps, selects the same step and ends near the same
test scores; the study's summary, page readers and Grad-CAM see its members as arm runs. A batched study
stopped in the middle and resumed loses no member and repeats no step.

Agreement is within CLOSE, not exact: grouped convolutions sum in another order than plain ones and
training amplifies float32 rounding (tests/test_classifier_batched.py).
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from data.files import read_json
from lab.engine import jobs
from lab.engine.children import read_children
from lab.study.arm_runs import arm_runs_of
from lab.study.summary import arm_model, read_summary, study_results

STUDY = {"dataset": {"name": "pneumoniamnist", "size": 28}, "train_fraction": 0.05, "seeds": [0, 1],
         "arms": [{"name": "real only"}, {"name": "real + aug + sampler", "kind": "standard_aug", "balance": "sampler"}],
         "train": {"steps": 24, "batch_size": 16, "eval_every": 8}}
KEYS = [f"{arm['name']}|{seed}" for seed in STUDY["seeds"] for arm in STUDY["arms"]]
CLOSE = 0.05  # test balanced accuracy of a member and its own run, 624 test images, after 24 steps
TIMEOUT_S = 600


def run_study(root, batched: str):
    study = jobs.submit("study", {**STUDY, "batched": batched}, root=root)
    assert jobs.wait(study, timeout=TIMEOUT_S) == "done", study.raw_status().get("error")
    return study


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("batched") / "runs"
        patch.setenv("LAB_RUNS_DIR", str(root))
        return run_study(root, "on"), run_study(root, "off")


def test_a_batched_study_trains_its_arm_runs_in_one_group_run(studies):
    batched, alone = studies
    assert [child.kind for child in read_children(batched).values()] == ["study-group"]
    assert {child.kind for child in read_children(alone).values()} == {"study-arm"}
    assert list(arm_runs_of(batched)) == list(arm_runs_of(alone)) == KEYS


def test_each_member_draws_the_images_its_own_run_draws(studies):
    batched, alone = (arm_runs_of(s) for s in studies)
    for key in KEYS:
        mine = np.load(batched[key].artifacts / "data_seen.npz")
        theirs = np.load(alone[key].artifacts / "data_seen.npz")
        for name in ("train", "train_synthetic", "val", "test"):
            assert np.array_equal(mine[name], theirs[name]), (key, name)
        assert read_json(batched[key].artifacts / "composition.json") == \
            read_json(alone[key].artifacts / "composition.json")


def test_each_member_selects_the_same_step_and_ends_near_its_own_run(studies):
    batched, alone = (arm_runs_of(s) for s in studies)
    for key in KEYS:
        mine, theirs = (read_json(runs[key].artifacts / "result.json") for runs in (batched, alone))
        assert mine["steps"] == theirs["steps"] == 24
        assert [h["step"] for h in mine["history"]] == [h["step"] for h in theirs["history"]] == [8, 16, 24]
        assert mine["best_step"] == theirs["best_step"], key
        for metric in ("accuracy", "balanced_accuracy"):
            assert abs(mine["test"][metric] - theirs["test"][metric]) <= CLOSE, (key, metric, mine["test"],
                                                                                 theirs["test"])


def test_the_summary_and_grad_cam_read_a_batched_study_like_any_other(studies):
    batched, _ = studies
    summary = read_summary(batched)
    assert [a.arm for a in summary.arms] == [arm["name"] for arm in STUDY["arms"]]
    assert all(a.metrics["balanced_accuracy"].n == 2 for a in summary.arms)
    assert sorted(f"{r['arm']}|{r['seed']}" for r in study_results(batched)) == sorted(KEYS)
    member = arm_runs_of(batched)["real + aug + sampler|1"]
    assert member.config["arm"]["balance"] == "sampler" and member.config["seed"] == 1
    assert [e["step"] for e in member.events("eval")] == [8, 16, 24]
    assert arm_model(member)(torch.zeros(1, 1, 28, 28)).shape == (1, 2)


def test_a_batched_study_stopped_and_resumed_loses_no_member_and_repeats_no_step(studies, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("LAB_RUNS_DIR", str(root))
    study = jobs.submit("study", {**STUDY, "batched": "on"}, root=root)
    deadline = time.time() + TIMEOUT_S
    while not any((child.checkpoints / "group.pt").exists() for child in read_children(study).values()):
        assert time.time() < deadline and study.state in ("queued", "running"), study.raw_status()
        time.sleep(0.05)
    jobs.cancel(study)
    assert jobs.wait(study, timeout=TIMEOUT_S) == "cancelled"
    group = next(iter(read_children(study).values()))
    assert group.state == "cancelled"
    jobs.resume(study, root=root)
    assert jobs.wait(study, timeout=TIMEOUT_S) == "done", study.raw_status().get("error")

    resumed_at = [e["step"] for e in group.events("resume")]
    assert len(resumed_at) == 1 and 8 <= resumed_at[0] < 24
    members = arm_runs_of(study)
    assert list(members) == KEYS
    for key, member in members.items():
        evaluations = [e["step"] for e in member.events("eval")]
        assert evaluations == [8, 16, 24], (key, evaluations)  # each evaluation once: no step ran twice
        assert read_json(member.artifacts / "result.json")["steps"] == 24
    uninterrupted = arm_runs_of(studies[0])
    for key in KEYS:
        assert read_json(members[key].artifacts / "result.json")["history"] == \
            read_json(uninterrupted[key].artifacts / "result.json")["history"], key


def test_the_cli_sets_seeds_and_batching_and_refuses_batched_early_stopping(tmp_path, capsys):
    import json

    from lab.cli import main

    assert main(["study", "--preset", "quick", "--seeds", "10", "--batched", "on", "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["seeds"] == list(range(10)) and config["batched"] == "on"
    path = tmp_path / "study.json"
    path.write_text(json.dumps({**STUDY, "train": {**STUDY["train"], "patience": 2}}))
    assert main(["study", str(path), "--batched", "on", "--print-config"]) == 1
    assert "patience" in capsys.readouterr().err
