"""Recipe arms: the generator is trained inside each seed, on exactly that seed's real subset, once
per seed for every arm that shares the recipe; run headless through `python -m lab study config.json`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from data.provenance import digest, fingerprints, read_provenance
from data.synthetic import load_set
from lab.engine.children import read_children
from lab.engine.runs import list_runs
from lab.sets import resolve_set
from lab.study.summary import read_summary

SEEDS = [0, 1]
FRACTION = 0.03
RECIPE = {"generator": "dcgan", "preset": "quick",
          "settings": {"steps": 3, "sample_every": 1000, "checkpoint_every": 1000, "log_every": 1}}
CONFIG = {"dataset": {"name": "pneumoniamnist", "size": 28}, "train_fraction": FRACTION, "seeds": SEEDS,
          "arms": [{"name": "real only"},
                   {"name": "real + dcgan", "kind": "recipe", "recipe": RECIPE},
                   {"name": "real + dcgan balanced", "kind": "recipe", "recipe": RECIPE, "mix": "balance"}],
          "train": {"steps": 4, "batch_size": 16, "eval_every": 4}}


@pytest.fixture(scope="module")
def recipe_study(tmp_path_factory):
    """A tiny recipe study on PneumoniaMNIST run by the CLI in a worker: (exit code, study run, runs root)."""
    from lab.cli import main

    root = tmp_path_factory.mktemp("runs")
    path = root.parent / "study.json"
    path.write_text(json.dumps(CONFIG))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_RUNS_DIR", str(root))
        code = main(["study", str(path)])
    [run] = list_runs("study", root=root)
    return code, run, root


def generator_children(run) -> dict:
    return {key: child for key, child in read_children(run).items() if child.kind == "gan"}


def test_the_cli_runs_a_study_with_recipe_arms(recipe_study):
    code, run, _ = recipe_study
    assert code == 0, (run.path / "log.txt").read_text()[-3000:]
    summary = read_summary(run)
    assert [(a.arm, a.kind) for a in summary.arms] == [("real only", "real"), ("real + dcgan", "recipe"),
                                                       ("real + dcgan balanced", "recipe")]
    assert summary.arm("real + dcgan").recipe == "DCGAN quick, one per class"


def test_each_seeds_generator_learned_from_exactly_that_seeds_subset(recipe_study, pneumonia):
    _, run, root = recipe_study
    generators = generator_children(run)
    assert sorted(int(key.rsplit("|", 1)[1]) for key in generators) == SEEDS
    digests = {}
    for key, child in generators.items():
        seed = int(key.rsplit("|", 1)[1])
        provenance, trained_on = read_provenance(child.artifacts / "synthetic.npz")
        subset = fingerprints(pneumonia.train.stratified_subset(FRACTION, seed).images)
        assert np.array_equal(np.sort(trained_on), np.sort(subset)), f"seed {seed}'s generator saw other images"
        assert provenance.train_fraction == FRACTION and provenance.subset_seed == seed
        digests[seed] = digest(trained_on)
    assert digests[0] != digests[1], "both seeds' generators learned from the same subset"


def test_one_generator_run_per_seed_serves_every_arm_with_that_recipe(recipe_study):
    _, run, root = recipe_study
    generators = {int(key.rsplit("|", 1)[1]): child for key, child in generator_children(run).items()}
    arms = {key: child for key, child in read_children(run).items() if child.kind == "study-arm"}
    for seed, generator in generators.items():
        made = fingerprints(load_set(generator.artifacts / "synthetic.npz").images)
        for name in ("real + dcgan", "real + dcgan balanced"):
            child = arms[f"{name}|{seed}"]
            assert resolve_set(child.config["recipe_set"], root) == generator.artifacts / "synthetic.npz"
            with np.load(child.artifacts / "data_seen.npz") as seen:
                drawn_synthetic = seen["train"][seen["train_synthetic"]]
            assert len(drawn_synthetic) and np.isin(drawn_synthetic, made).all(), name


def test_recipe_arms_report_their_copy_rate_beside_the_gain(recipe_study):
    _, run, _ = recipe_study
    summary = read_summary(run)
    for arm in summary.arms[1:]:
        assert arm.copy_rate is not None and 0 <= arm.copy_rate.mean <= 1 and arm.copy_rate.n == len(SEEDS)
        assert "Suspected copies of its seed's real images" in arm.verdict
        assert arm.reference == "real only"
    assert summary.arm("real only").copy_rate is None
    header = (run.artifacts / "report.csv").read_text().splitlines()[0]
    assert "copy_rate" in header.split(",")
