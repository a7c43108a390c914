"""Recipe arms take a filter: the generated images are scored inside each seed against that seed's real
subset only, and only those that pass train the classifier. A filter that keeps everything gives the
unfiltered arm's numbers exactly; the study's summary and report say what it kept of each seed; the study
config shows the field and refuses it where it does not apply."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from classifier.evaluate import Trivial
from classifier.train import TrainConfig
from data.config import ConfigError
from data.datasets import DatasetSpec, load_dataset
from data.provenance import digest, fingerprints
from data.subset import SeedSubset
from lab.cli import main
from lab.engine.runs import Run
from lab.kinds import gan
from lab.study.arm import train_arm
from lab.study.config import ArmConfig, ArmRunConfig, RecipeConfig, StudyConfig
from lab.study.report import arm_table, write_report
from lab.study.summary import StudySummary, write_summary
from lab.study.verdicts import summarize
from metrics.curation import CurationConfig, CurationRule

PNEUMONIA = DatasetSpec(name="pneumoniamnist", size=28)
FRACTION, SEED, SEEDS = 0.03, 0, [0, 1]
RECIPE = RecipeConfig("dcgan", "quick", settings={"steps": 2, "sample_every": 1000, "checkpoint_every": 1000})
SCORING = CurationConfig(steps=5, folds=2)
BUDGET = TrainConfig(steps=4, batch_size=16, eval_every=4)


@pytest.fixture(scope="module")
def recipe_sets(tmp_path_factory):
    """A runs folder and, per seed of SEEDS, the set of the recipe's DCGAN trained on that seed's subset (as a
    study's generator child)."""
    root = tmp_path_factory.mktemp("runs")
    refs = {}
    for seed in SEEDS:
        subset = SeedSubset.draw(load_dataset(PNEUMONIA).train, FRACTION, seed)
        kind, config = RECIPE.job(PNEUMONIA, subset, images_per_class=40, seed_indices=[])
        run = Run.create(kind, config, root=root)
        gan.run(run)
        run.write_status("done")
        refs[seed] = f"{run.id}/synthetic"
    return root, refs


def filtered_arm(rule: CurationRule | None, name: str = "real + dcgan") -> ArmConfig:
    return ArmConfig(name, "recipe", recipe=RECIPE, filter=rule,
                     filter_scoring=SCORING if rule is not None else CurationConfig())


def arm_outcome(root, refs: dict[int, str], arm: ArmConfig, seed: int = SEED):
    return train_arm(ArmRunConfig(arm=arm, seed=seed, dataset=PNEUMONIA, train_fraction=FRACTION, train=BUDGET,
                                  recipe_set=refs[seed] if arm.kind == "recipe" else None), root=root)


def arm_result(root, refs: dict[int, str], rule: CurationRule | None) -> tuple[dict, dict]:
    outcome = arm_outcome(root, refs, filtered_arm(rule))
    return outcome.result, outcome.composition


def test_a_filter_that_keeps_everything_gives_the_unfiltered_arms_numbers_exactly(recipe_sets, pneumonia):
    root, ref = recipe_sets
    plain, plain_composition = arm_result(root, ref, None)
    kept, kept_composition = arm_result(root, ref, CurationRule())
    assert kept["filter"]["kept"] == kept["filter"]["generated"] == 80
    subset = pneumonia.train.stratified_subset(FRACTION, SEED)
    assert kept["filter"]["real_images"] == len(subset)  # scored against the seed's subset and nothing else
    assert kept["filter"]["real_subset"] == digest(fingerprints(subset.images))
    assert kept["test"] == plain["test"] and kept["val"] == plain["val"] and kept["history"] == plain["history"]
    assert kept_composition == plain_composition and "filter" not in plain


def test_a_filter_trains_on_the_images_that_pass_only(recipe_sets, pneumonia):
    root, ref = recipe_sets
    result, composition = arm_result(root, ref, CurationRule(min_confidence=0.5))
    kept = result["filter"]
    assert kept["kept"] == sum(kept["kept_per_class"]) == 80 - kept["dropped_because"]["low class confidence"]
    real = len(pneumonia.train.stratified_subset(FRACTION, SEED))
    assert composition["train"]["synthetic"] == min(kept["kept"], real)  # ratio 1: as many as real, if there are


def test_the_study_summary_and_report_say_what_the_filter_kept_of_each_seed(recipe_sets, pneumonia, tmp_path):
    root, refs = recipe_sets
    arms = [ArmConfig("real only"), filtered_arm(CurationRule(min_confidence=0.5), "real + dcgan, filtered")]
    results = [arm_outcome(root, refs, arm, seed).result for arm in arms for seed in SEEDS]
    study = StudyConfig(dataset=PNEUMONIA, train_fraction=FRACTION, seeds=SEEDS, arms=arms, train=BUDGET)
    trivial = Trivial.of(pneumonia.train.labels, pneumonia.test.labels, pneumonia.class_names)
    summary = summarize(study, results, pneumonia.class_names, trivial)  # as the study job does, then writes:
    write_report(tmp_path, summary, results)
    written = StudySummary.from_dict(json.loads(write_summary(tmp_path, summary).read_text()))

    kept = {r["seed"]: r["filter"] for r in results if "filter" in r}
    assert sorted(kept) == SEEDS
    arm = written.arm("real + dcgan, filtered")
    assert arm.filter.rule == "class confidence ≥ 0.5"
    assert [(s["seed"], s["kept"], s["generated"], s["dropped_because"]) for s in arm.filter.seeds] == [
        (seed, kept[seed]["kept"], 80, kept[seed]["dropped_because"]) for seed in SEEDS]
    assert written.arm("real only").filter is None
    for seed in SEEDS:  # the verdict (page and HTML) names each seed's share
        share = f"{kept[seed]['kept']} of 80 ({100 * kept[seed]['kept'] / 80:.1f}%) on seed {seed}"
        assert share in arm.verdict
        assert share in (tmp_path / "report.html").read_text()
    dropped = sum(kept[seed]["dropped_because"]["low class confidence"] for seed in SEEDS)
    assert f"low class confidence {dropped}" in arm.verdict
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [(int(r["seed"]), int(r["filter_kept"]), int(r["filter_generated"])) for r in rows
            if r["arm"] == arm.arm] == [(seed, kept[seed]["kept"], 80) for seed in SEEDS]
    assert {r["filter_kept"] for r in rows if r["arm"] == "real only"} == {""}
    table = {row["arm"]: row for row in arm_table(written)}
    assert table[arm.arm]["filter kept"] == ", ".join(f"{kept[s]['kept']}/80" for s in SEEDS)
    assert table["real only"]["filter kept"] == ""


def test_the_study_config_has_a_filter_field_only_recipe_arms_take(capsys):
    assert main(["study", "--preset", "quick", "--recipe", "dcgan", "--print-config"]) == 0
    arms = json.loads(capsys.readouterr().out)["arms"]
    assert [a["filter"] for a in arms if a["kind"] == "recipe"] == [None]
    assert main(["study", "--preset", "quick", "--recipe", "dcgan", "--filter", "drop_copies=true",
                 "--filter", "min_confidence=0.4", "--print-config"]) == 0
    arms = json.loads(capsys.readouterr().out)["arms"]
    assert [(a["name"], a["filter"]) for a in arms if a["kind"] == "recipe"] == [
        ("real + dcgan recipe", None),
        ("real + dcgan recipe, filtered", {"min_confidence": 0.4, "min_realism": 0.0, "drop_copies": True})]
    with pytest.raises(ConfigError, match="a filter applies to recipe arms only"):
        ArmConfig("real only", filter=CurationRule(drop_copies=True))
    with pytest.raises(ConfigError, match="filter_scoring is set but the arm has no filter"):
        ArmConfig("r", "recipe", recipe=RECIPE, filter_scoring=SCORING)
    with pytest.raises(ConfigError, match="min_confidence"):
        ArmConfig.from_dict({"name": "r", "kind": "recipe", "recipe": RECIPE.to_dict(),
                             "filter": {"min_confidence": 2}})
    assert np.isclose(ArmConfig.from_dict(ArmConfig("r", "recipe", recipe=RECIPE, filter=CurationRule(
        min_realism=0.2)).to_dict()).filter.min_realism, 0.2)
