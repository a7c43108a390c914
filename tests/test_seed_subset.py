"""One seed subset per seed: a study draws each seed's real subset once and hands the same indices to every
generator and every classifier of that seed, in their configs; a generator or an arm learns from exactly the
indices it is given (not from a rule it happens to share), and indices that do not fit the data are refused."""
from __future__ import annotations

import numpy as np
import pytest

from classifier.train import TrainConfig
from data.config import ConfigError
from data.provenance import digest, fingerprints
from data.subset import SeedSubset
from gans.config import make_config
from gans.train import training_images
from lab.study.arm import train_arm
from lab.study.config import ArmConfig, ArmRunConfig, RecipeConfig, StudyConfig, arm_runs
from lab.study.recipes import generator_runs

PNEUMONIA = {"name": "pneumoniamnist", "size": 28}


def test_a_seed_subset_is_the_stratified_share_drawn_with_its_seed(pneumonia):
    subset = SeedSubset.draw(pneumonia.train, 0.1, 3)
    expected = pneumonia.train.stratified_subset(0.1, seed=3)
    assert np.array_equal(subset.of(pneumonia.train).images, expected.images)
    assert len(subset) == len(expected) and list(subset.indices) == sorted(set(subset.indices))
    assert SeedSubset.draw(pneumonia.train, 0.1, 4).indices != subset.indices


def test_every_generator_and_classifier_of_a_seed_is_handed_the_same_indices(pneumonia):
    study = StudyConfig(dataset=PNEUMONIA, train_fraction=0.05, seeds=[0, 1],
                        arms=[ArmConfig("real only"),
                              ArmConfig("real + dcgan", "recipe", recipe=RecipeConfig("dcgan", settings={"steps": 2})),
                              ArmConfig("real + gpnn", "recipe", recipe=RecipeConfig("gpnn", seeds_per_class=1,
                                                                                     variations=1))],
                        train=TrainConfig(steps=2, batch_size=8, eval_every=2))
    subsets = study.subsets(pneumonia.train)
    generators = generator_runs(study, pneumonia, subsets)
    arms = arm_runs(study, subsets, {f"{recipe.key}|{seed}": "planned" for recipe, _ in study.recipes()
                                     for seed in study.seeds})
    for seed in study.seeds:
        indices = list(subsets[seed].indices)
        assert indices == list(SeedSubset.draw(pneumonia.train, 0.05, seed).indices)
        gan = next(config for key, (kind, _, config) in generators.items() if kind == "gan" and key.endswith(f"|{seed}"))
        gpnn = next(config for key, (kind, _, config) in generators.items() if kind == "gpnn" and key.endswith(f"|{seed}"))
        assert gan["train_indices"] == indices
        assert set(gpnn["seed_indices"]) <= set(indices) and len(gpnn["seed_indices"]) == 2  # one per class
        for name in ("real only", "real + dcgan", "real + gpnn"):
            assert arms[f"{name}|{seed}"][1]["train_indices"] == indices
    assert list(subsets[0].indices) != list(subsets[1].indices)


def test_a_generator_learns_from_exactly_the_indices_it_is_handed(pneumonia):
    """Indices that no stratified draw would give (the first 30 images) decide what the GAN sees."""
    config = make_config("dcgan", "quick", dataset=PNEUMONIA, train_fraction=0.05, seed=0,
                         train_indices=list(range(30)))
    images = training_images(config)
    assert np.array_equal(images.images, pneumonia.train.images[:30])


def test_an_arm_trains_on_exactly_the_indices_it_is_handed(pneumonia, runs_root):
    indices = list(range(40, 100))
    config = ArmRunConfig(arm=ArmConfig("real only"), seed=0, dataset=PNEUMONIA, train_fraction=0.05,
                          train_indices=indices, train=TrainConfig(steps=2, batch_size=8, eval_every=2))
    outcome = train_arm(config, root=runs_root)
    assert outcome.composition["train"]["real_subset"] == digest(fingerprints(pneumonia.train.images[indices]))
    assert outcome.composition["train"]["images"] == len(indices)


@pytest.mark.parametrize("indices", [[3, 1], [1, 1], [-1, 2]])
def test_indices_that_are_not_sorted_distinct_and_non_negative_are_refused(indices):
    with pytest.raises(ConfigError, match="train_indices"):
        make_config("dcgan", "quick", dataset=PNEUMONIA, train_indices=indices)
    with pytest.raises(ConfigError, match="train_indices"):
        ArmRunConfig(arm=ArmConfig("real only"), dataset=PNEUMONIA, train_indices=indices)


def test_indices_outside_the_training_split_are_refused_naming_the_data(pneumonia):
    config = make_config("dcgan", "quick", dataset=PNEUMONIA, train_indices=[0, len(pneumonia.train)])
    with pytest.raises(ValueError, match="outside the training split of pneumoniamnist"):
        training_images(config)
