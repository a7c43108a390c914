"""Verdicts that hide nothing: judged against the strongest reference arm, every significant drop
named, the minimum detectable difference given, no verdict when the baseline does not beat the
trivial classifier; and a budget and an expected precision sized to the data before launch."""
from __future__ import annotations

import json

import numpy as np
import pytest

from classifier.evaluate import Trivial
from classifier.train import TrainConfig
from lab.engine.runs import Run
from lab.study.config import ArmConfig, RecipeConfig, StudyConfig, preset, quick_budget
from lab.study.report import arm_table, report_rows, yardsticks
from lab.study.summary import StudySummary, expected_interval, write_summary
from lab.study.verdicts import summarize
from lab.study.verdicts import detectable_difference

SEEDS = [0, 1, 2]
ARMS = [ArmConfig("real only"), ArmConfig("real + sampler", balance="sampler"),
        ArmConfig("real + dcgan recipe", "recipe", recipe=RecipeConfig("dcgan"))]
TRIVIAL = Trivial("normal", {"accuracy": 0.6, "balanced_accuracy": 0.5, "macro_f1": 0.375, "auc_ovr": 0.5})


def results(arm: str, **per_seed: list[float]) -> list[dict]:
    """result.json of an arm on SEEDS: the given per-seed test scores, fixed ones for the rest."""
    out = []
    for i, seed in enumerate(SEEDS):
        test = {"accuracy": 0.80, "balanced_accuracy": 0.60, "macro_f1": 0.55, "auc_ovr": 0.75,
                **{m: values[i] for m, values in per_seed.items()},
                "per_class_recall": [0.7, 0.5], "confusion": [[7, 3], [5, 5]]}
        out.append({"arm": arm, "seed": seed, "steps": 10, "test": test})
    return out


def study_summary(trivial: Trivial = TRIVIAL, baseline_accuracy=(0.80, 0.82, 0.81)) -> StudySummary:
    study = StudyConfig(dataset={"name": "pneumoniamnist"}, seeds=SEEDS, arms=ARMS)
    found = [*results("real only", balanced_accuracy=[0.60, 0.62, 0.61], accuracy=list(baseline_accuracy)),
             *results("real + sampler", balanced_accuracy=[0.64, 0.67, 0.65], auc_ovr=[0.70, 0.71, 0.72]),
             *results("real + dcgan recipe", balanced_accuracy=[0.70, 0.74, 0.71], accuracy=[0.70, 0.71, 0.69])]
    return summarize(study, found, ["normal", "pneumonia"], trivial)


def test_a_generator_arm_is_judged_against_the_strongest_reference_arm_and_says_which():
    summary = study_summary()
    recipe = summary.arm("real + dcgan recipe")
    assert summary.strongest_reference == recipe.reference == "real + sampler"
    delta = recipe.against_reference["balanced_accuracy"].delta
    assert delta.mean == pytest.approx(np.mean([0.06, 0.07, 0.06]))
    assert "vs real + sampler (the strongest reference arm)" in recipe.verdict
    assert "Vs real only: +10.7 points [+7.8, +13.5], better." in recipe.verdict
    assert "judged against it" in yardsticks(summary) and "real + sampler" in yardsticks(summary)


def test_a_significant_drop_on_another_metric_is_named_beside_a_gain():
    summary = study_summary()
    recipe = summary.arm("real + dcgan recipe").verdict
    assert "better than real + sampler" in recipe
    assert "Significant drops: accuracy -10.0 points [-12.5, -7.5] vs real + sampler; accuracy -11.0 points" in recipe
    sampler = summary.arm("real + sampler").verdict  # the sampler lowers AUC: named too
    assert "Significant drop: AUC (one-vs-rest) -4.0 points [-6.5, -1.5] vs real only." in sampler


def test_every_verdict_carries_the_minimum_detectable_difference():
    summary = study_summary()
    recipe = summary.arm("real + dcgan recipe")
    mdd = detectable_difference(recipe.against_reference["balanced_accuracy"].delta)
    assert 0 < mdd < 0.2
    assert f"Minimum detectable difference: {100 * mdd:.1f} points." in recipe.verdict
    more_spread = detectable_difference(recipe.vs_baseline["accuracy"].delta)
    assert np.isfinite(more_spread)
    row = next(r for r in arm_table(summary) if r["arm"] == "real + dcgan recipe")
    assert row["detectable (points)"] == f"{100 * mdd:.1f}" and row["vs"] == "real + sampler"


def test_a_baseline_that_does_not_beat_the_majority_class_cannot_judge_augmentation():
    trivial = Trivial("normal", {**TRIVIAL.scores, "accuracy": 0.731})
    summary = study_summary(trivial, baseline_accuracy=(0.70, 0.71, 0.70))
    assert "does worse than always predicting the majority class normal (73.1%)" in summary.cannot_judge
    assert summary.baseline_margin.mean == pytest.approx(np.mean([0.70, 0.71, 0.70]) - 0.731)
    assert "This study cannot judge augmentation" in summary.arm("real only").verdict
    for arm in summary.arms[1:]:
        assert arm.verdict.startswith("Cannot judge augmentation: the baseline real only (accuracy 70.3%)")
    fine = study_summary()
    assert fine.cannot_judge == "" and "Cannot judge" not in fine.arm("real + dcgan recipe").verdict
    assert "+21.0 points" in fine.arm("real only").verdict  # accuracy 81% over a majority rate of 60%


def test_a_primary_metric_not_clearly_above_chance_cannot_judge_either():
    trivial = Trivial("normal", {**TRIVIAL.scores, "balanced_accuracy": 0.605})
    summary = study_summary(trivial)
    assert "not clearly above the trivial classifier's (60.5%)" in summary.cannot_judge


def test_the_trivial_classifier_predicts_the_training_majority_class():
    train = np.array([0] * 8 + [1] * 2 + [2] * 5)
    test = np.array([0] * 6 + [1] * 2 + [2] * 2)
    trivial = Trivial.of(train, test, ["a", "b", "c"])
    assert trivial.majority_class == "a" and trivial.majority_rate == pytest.approx(0.6)
    assert trivial.scores["balanced_accuracy"] == pytest.approx(1 / 3)
    assert trivial.scores["auc_ovr"] == pytest.approx(0.5)


def test_the_summary_reads_back_as_the_same_json(tmp_path):
    summary = study_summary()
    path = write_summary(tmp_path, summary)
    again = StudySummary.from_dict(json.loads(path.read_text()))
    assert json.dumps(again.to_dict()) == json.dumps(summary.to_dict())
    assert again.arm("real + dcgan recipe").reference == "real + sampler"
    assert len(report_rows(summary)) == 3 * 4


def test_the_quick_budget_fits_the_data():
    assert quick_budget(np.array([469, 80, 35, 7, 78, 11, 21])) == TrainConfig(steps=400, batch_size=64,
                                                                                eval_every=100)
    small = quick_budget(np.array([28, 10]))
    assert small.batch_size == 38 and small.steps == 50  # no batch larger than the subset, few passes
    middle = quick_budget(np.array([150, 150]))
    assert middle.batch_size == 64 and middle.steps == 188


def test_the_quick_preset_sizes_its_budget_to_the_subset():
    config = preset("quick", {"name": "pneumoniamnist"}, train_fraction=0.005)
    assert config.train.batch_size <= 24 and config.train.steps < 400  # 24 images
    assert [a.name for a in config.arms] == ["real only", "real + sampler", "real + standard aug",
                                             "real + aug + sampler"]


def test_the_expected_interval_comes_from_an_earlier_study_on_the_same_data(runs_root):
    from data.datasets import DatasetSpec

    spec = DatasetSpec(name="pneumoniamnist")
    guess = expected_interval(3, spec, 0.1, root=runs_root)
    assert "rule of thumb" in guess.source and guess.spread == 0.02
    assert expected_interval(5, spec, 0.1, root=runs_root).halfwidth < guess.halfwidth
    assert not np.isfinite(expected_interval(1, spec, 0.1, root=runs_root).halfwidth)
    earlier = Run.create("study", {}, root=runs_root)
    summary = study_summary()
    summary.train_fraction = 0.1
    write_summary(earlier.artifacts, summary)
    earlier.write_status("done")
    measured = expected_interval(3, spec, 0.1, root=runs_root)
    assert earlier.id in measured.source
    assert measured.spread == pytest.approx(np.std([0.60, 0.62, 0.61], ddof=1))
    assert f"±{100 * measured.halfwidth:.1f} points" in measured.text
    assert "rule of thumb" in expected_interval(3, spec, 0.2, root=runs_root).source  # another fraction
