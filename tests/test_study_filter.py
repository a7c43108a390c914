"""Recipe arms take a filter: the generated images are scored inside each seed against that seed's real
subset only, and only those that pass train the classifier. A filter that keeps everything gives the
unfiltered arm's numbers exactly; the study config shows the field and refuses it where it does not apply."""
from __future__ import annotations

import json

import numpy as np
import pytest

from classifier.train import TrainConfig
from data.config import ConfigError
from data.datasets import DatasetSpec, load_dataset
from data.provenance import digest, fingerprints
from data.subset import SeedSubset
from lab.cli import main
from lab.engine.runs import Run
from lab.kinds import gan
from lab.study.arm import train_arm
from lab.study.config import ArmConfig, ArmRunConfig, RecipeConfig
from metrics.curation import CurationConfig, CurationRule

PNEUMONIA = DatasetSpec(name="pneumoniamnist", size=28)
FRACTION, SEED = 0.03, 0
RECIPE = RecipeConfig("dcgan", "quick", settings={"steps": 2, "sample_every": 1000, "checkpoint_every": 1000})
SCORING = CurationConfig(steps=5, folds=2)
BUDGET = TrainConfig(steps=4, batch_size=16, eval_every=4)


@pytest.fixture(scope="module")
def recipe_set(tmp_path_factory):
    """A runs folder and the set of the recipe's DCGAN trained on seed 0's subset (as a study's generator child)."""
    root = tmp_path_factory.mktemp("runs")
    subset = SeedSubset.draw(load_dataset(PNEUMONIA).train, FRACTION, SEED)
    kind, config = RECIPE.job(PNEUMONIA, subset, images_per_class=40, seed_indices=[])
    run = Run.create(kind, config, root=root)
    gan.run(run)
    run.write_status("done")
    return root, f"{run.id}/synthetic"


def arm_result(root, ref: str, rule: CurationRule | None) -> tuple[dict, dict]:
    arm = ArmConfig("real + dcgan", "recipe", recipe=RECIPE, filter=rule,
                    filter_scoring=SCORING if rule is not None else CurationConfig())
    outcome = train_arm(ArmRunConfig(arm=arm, seed=SEED, dataset=PNEUMONIA, train_fraction=FRACTION, train=BUDGET,
                                     recipe_set=ref), root=root)
    return outcome.result, outcome.composition


def test_a_filter_that_keeps_everything_gives_the_unfiltered_arms_numbers_exactly(recipe_set, pneumonia):
    root, ref = recipe_set
    plain, plain_composition = arm_result(root, ref, None)
    kept, kept_composition = arm_result(root, ref, CurationRule())
    assert kept["filter"]["kept"] == kept["filter"]["generated"] == 80
    subset = pneumonia.train.stratified_subset(FRACTION, SEED)
    assert kept["filter"]["real_images"] == len(subset)  # scored against the seed's subset and nothing else
    assert kept["filter"]["real_subset"] == digest(fingerprints(subset.images))
    assert kept["test"] == plain["test"] and kept["val"] == plain["val"] and kept["history"] == plain["history"]
    assert kept_composition == plain_composition and "filter" not in plain


def test_a_filter_trains_on_the_images_that_pass_only(recipe_set, pneumonia):
    root, ref = recipe_set
    result, composition = arm_result(root, ref, CurationRule(min_confidence=0.5))
    kept = result["filter"]
    assert kept["kept"] == sum(kept["kept_per_class"]) == 80 - kept["dropped_because"]["low class confidence"]
    real = len(pneumonia.train.stratified_subset(FRACTION, SEED))
    assert composition["train"]["synthetic"] == min(kept["kept"], real)  # ratio 1: as many as real, if there are


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
