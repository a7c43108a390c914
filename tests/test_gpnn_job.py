"""The "gpnn" job: its strict config, one image with its figures (diversity, SIFID), seeds per class as a
synthetic set that records its seed images, the CLI, and a study recipe that uses the seed's subset only."""
from __future__ import annotations

import json

import numpy as np
import pytest

from data.config import ConfigError
from data.provenance import fingerprints, read_provenance
from data.synthetic import load_set
from gans.gpnn import GpnnConfig, gpnn_config
from lab.cli import main
from lab.engine import jobs
from lab.engine.children import read_children
from lab.engine.runs import Run
from lab.kinds.gpnn import run as run_gpnn
from lab.sets import list_sets
from lab.study.config import StudyConfig
from metrics.diversity import diversity
from tests.conftest import DATA_DIR

OCT = DATA_DIR / "oct2017_samples" / "DME-11053-1.jpeg"
PNEUMONIA = {"name": "pneumoniamnist", "size": 28}
FAST = {"iters": 2, "fine_levels": 1, "fine_iters": 1, "sifid": False}  # a few seconds at 28 px


def test_config_refuses_unknown_keys_and_bad_values_when_built():
    good = gpnn_config("quick", mode="image", image_path=str(OCT)).to_dict()
    assert GpnnConfig.from_dict(good).to_dict() == good
    with pytest.raises(ConfigError, match="'variatons'"):
        GpnnConfig.from_dict({**good, "variatons": 3})
    with pytest.raises(ConfigError, match="'patch'"):
        GpnnConfig.from_dict({**good, "model": {**good["model"], "patch": 3}})
    with pytest.raises(ConfigError, match="image mode needs"):
        gpnn_config("quick", mode="image")
    with pytest.raises(ConfigError, match="seeds mode needs a dataset"):
        gpnn_config("quick", mode="seeds")
    with pytest.raises(ConfigError, match="seeds_per_class"):
        gpnn_config("quick", mode="seeds", dataset=PNEUMONIA, seeds_per_class=0)
    with pytest.raises(ConfigError, match="min_side"):
        gpnn_config("quick", mode="image", image_path=str(OCT), patch_size=9, min_side=8)
    with pytest.raises(ConfigError, match="unknown preset"):
        gpnn_config("tiny", mode="image", image_path=str(OCT))


def test_diversity_is_zero_for_copies_and_the_mean_pixel_distance_otherwise():
    image = np.full((4, 4, 1), 100, np.uint8)
    copies = np.stack([image] * 3)
    assert diversity(image, copies, None) == {"to_image": 0.0, "between": 0.0, "real_pairs": None, "pixel_std": 0.0}
    varied = np.stack([image, image + 10, image + 30])
    figures = diversity(image, varied, np.stack([image, image + 40]))
    assert figures["to_image"] == pytest.approx(40 / 3, abs=1e-3) and figures["between"] == pytest.approx(20, abs=1e-3)
    assert figures["real_pairs"] == pytest.approx(40)  # only the two distinct images pair up
    assert diversity(image, image[None], None)["between"] is None


def test_an_image_run_writes_variations_and_how_much_they_vary(runs_root, pneumonia):
    config = gpnn_config("quick", mode="image", dataset=PNEUMONIA, image_index=7, variations=3, **FAST)
    run = Run.create("gpnn", config.to_dict(), root=runs_root)
    run_gpnn(run)
    with np.load(run.artifacts / "variations.npz") as f:
        variations, label = f["images"], str(f["label"])
    assert variations.shape == (3, 28, 28, 1) and variations.dtype == np.uint8
    assert label == pneumonia.class_names[pneumonia.train.labels[7]]
    summary = json.loads((run.artifacts / "summary.json").read_text())
    figures = summary["diversity"]
    seed = pneumonia.train.images[7]
    assert figures["to_image"] == pytest.approx(np.abs(variations.astype(float) - seed).mean(), abs=1e-3)
    assert figures["between"] > 0 and 20 < figures["real_pairs"] < 80  # real chest X-rays differ by ~35/255
    assert "sifid" not in summary  # turned off
    assert (run.artifacts / "variations.png").exists()
    assert run.raw_status()["progress"]["done"] == run.raw_status()["progress"]["total"]


def test_an_image_run_scores_sifid_against_its_image(runs_root):
    config = gpnn_config("quick", mode="image", image_path=str(OCT), variations=2, max_side=48, **FAST)
    run = Run.create("gpnn", {**config.to_dict(), "sifid": True}, root=runs_root)
    run_gpnn(run)
    summary = json.loads((run.artifacts / "summary.json").read_text())
    assert summary["sifid"] > 0 and "Conv2d_4a_3x3" in summary["sifid_feature_space"]
    assert summary["diversity"]["real_pairs"] is None  # a file has no class to compare with


def test_seeds_per_class_registers_a_labelled_set_that_records_its_seed_images(runs_root, pneumonia):
    config = gpnn_config("quick", mode="seeds", dataset=PNEUMONIA, seeds_per_class=2, variations=3, seed=4, **FAST)
    run = Run.create("gpnn", config.to_dict(), root=runs_root)
    run_gpnn(run)
    synthetic = load_set(run.artifacts / "gpnn_variations.npz")
    assert synthetic.images.shape == (12, 28, 28, 1)
    assert synthetic.labels.tolist() == [0] * 6 + [1] * 6 and synthetic.class_names == pneumonia.class_names
    indices = json.loads((run.artifacts / "seeds.json").read_text())["indices"]
    provenance, trained_on = read_provenance(run.artifacts / "gpnn_variations.npz")
    assert (provenance.generator, provenance.run_id) == ("gpnn", run.id)
    assert sorted(trained_on.tolist()) == sorted(fingerprints(pneumonia.train.images[indices]).tolist())
    assert not read_children(run)  # no training: no child runs
    assert [s.path for s in list_sets(runs_root)] == [run.artifacts / "gpnn_variations.npz"]
    assert (run.artifacts / "gpnn_variations.zip").stat().st_size > 0 and (run.samples / "seeds.png").exists()
    summary = json.loads((run.artifacts / "summary.json").read_text())
    assert len(summary["diversity_per_seed"]) == 4 and summary["diversity"]["to_image"] > 0


def test_cli_makes_variations_through_a_worker_and_prints_their_figures(runs_root, capsys):
    code = main(["gpnn", "--dataset", "pneumoniamnist", "--image-index", "3", "--variations", "2", "--iters", "2",
                 "--fine-levels", "1", "--fine-iters", "1", "--no-sifid"])
    out = capsys.readouterr().out
    assert code == 0, out
    (run,) = [Run(p) for p in (runs_root / "gpnn").iterdir()]
    assert run.state == "done" and run.config["model"]["iters"] == 2 and run.config["sifid"] is False
    assert "variations differ from their image by" in out and "two real images of the class differ by" in out
    assert jobs.job_kind("gpnn").run is run_gpnn


def test_a_gpnn_recipe_learns_from_seed_images_of_that_seeds_subset_only(runs_root, pneumonia):
    from lab.kinds.study import train_generators

    fraction = 0.03
    study = StudyConfig.from_dict({
        "dataset": PNEUMONIA, "train_fraction": fraction, "seeds": [0, 1],
        "arms": [{"name": "real only"},
                 {"name": "real + gpnn", "kind": "recipe",
                  "recipe": {"generator": "gpnn", "seeds_per_class": 1, "variations": 2, "settings": FAST}}],
        "train": {"steps": 2, "batch_size": 8, "eval_every": 2}})
    parent = Run.create("study", study.to_dict(), root=runs_root)
    sets = train_generators(parent, study, pneumonia, study.subsets(pneumonia.train))  # refuses a set that learned
    # outside the seed's subset
    children = read_children(parent)
    assert sorted(sets) == sorted(children) and {c.kind for c in children.values()} == {"gpnn"}
    for key, child in children.items():
        seed = int(key.rsplit("|", 1)[1])
        subset = fingerprints(pneumonia.train.stratified_subset(fraction, seed).images)
        _, trained_on = read_provenance(child.artifacts / "gpnn_variations.npz")
        assert len(trained_on) == 2 and np.isin(trained_on, subset).all(), f"seed {seed}'s GPNN saw other images"
        assert child.config["seed"] == seed and child.state == "done"
