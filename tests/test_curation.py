"""Curated synthetic sets: per-image scores on real data (planted copies found, real images ranked above
noise, class confidence that follows the label), rules, the curate job and CLI writing a new set whose
verified provenance names its parent, rule and counts (the parent untouched), a forged one not believed,
and a study refusing a curated set whose scoring models saw real images outside the seed's subset."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from classifier.train import TrainConfig
from tests.conftest import DATA_DIR
from data.imageset import ImageSet
from data.provenance import fingerprints
from gans.config import make_config
from gans.gpnn import gpnn_config
from lab.cli import main
from lab.curation import CurateConfig, curation_runs, review_choices, save_choices, write_reviewed
from lab.engine import jobs
from lab.engine.runs import Run, list_runs
from lab.kinds import curate, gan
from lab.kinds.gpnn import run as run_gpnn
from lab.provenance_check import verified_provenance
from lab.sets import resolve_set, set_id
from lab.study.config import ArmConfig, SetRefused, StudyConfig
from lab.study.leaks import check_sets
from metrics.curation import CurationConfig, CurationRule, CurationScores, score_set, select

PNEUMONIA = {"name": "pneumoniamnist", "size": 28}
OCT = DATA_DIR / "oct2017_samples" / "CNV-53018-1.jpeg"
FAST = CurationConfig(steps=10, folds=2)


@pytest.fixture(scope="module")
def gan_set(tmp_path_factory):
    """A runs folder with the set of a (barely trained) DCGAN that learned from 10% of PneumoniaMNIST (seed 0)."""
    root = tmp_path_factory.mktemp("runs")
    config = make_config("dcgan", "quick", dataset=PNEUMONIA, train_fraction=0.1, seed=0, steps=2,
                         export_per_class=12, sample_every=1000, checkpoint_every=1000)
    run = Run.create("gan", config.to_dict(), root=root)
    gan.run(run)
    run.write_status("done")
    return root, run.artifacts / "synthetic.npz"


def curate_in_process(root, ref: str, rule: CurationRule | None, name: str = "curated") -> Run:
    run = Run.create("curate", CurateConfig(set=ref, rule=rule, name=name, scoring=FAST).to_dict(), root=root)
    curate.run(run)
    run.write_status("done")
    return run


def test_scores_find_planted_copies_and_rank_real_images_above_noise(pneumonia):
    real = pneumonia.train.stratified_subset(0.1, 0)
    unseen = np.flatnonzero(~np.isin(fingerprints(pneumonia.val.images), fingerprints(pneumonia.train.images)))[:40]
    val = pneumonia.val.take(unseen)
    noise = np.random.default_rng(0).integers(0, 256, size=(40, 28, 28, 1), dtype=np.uint8)
    images = np.concatenate([val.images, val.images, noise, real.images[:6]])
    labels = np.concatenate([val.labels, 1 - val.labels, np.zeros(40, np.int64), real.labels[:6]])
    synthetic = ImageSet(images, labels, pneumonia.class_names, "synthetic")
    scores = score_set(synthetic, real, CurationConfig(steps=40, folds=2))

    assert scores.suspected_copy.tolist() == [False] * 120 + [True] * 6
    assert scores.distance[-6:].max() < 1 / 255 < scores.copy_threshold < scores.distance[:120].min()
    assert (scores.nearest[-6:] == np.arange(6)).all()
    # binary classes: the same image's confidence under its label and under the other one sum to 1
    assert np.allclose(scores.confidence[:40] + scores.confidence[40:80], 1)
    assert scores.confidence[:40].mean() > 0.6  # real images look like their own class
    assert scores.realism[:80].mean() > 0.5 > 0.1 > scores.realism[80:120].mean()
    assert ((0 <= scores.realism) & (scores.realism <= 1)).all() and scores.real_images == len(real)


def test_a_rule_keeps_what_passes_every_threshold_and_the_default_keeps_everything(tmp_path):
    scores = CurationScores(np.array([0, 0, 1, 1]), np.array([0.9, 0.2, 0.6, 0.8]), np.array([0.5, 0.9, 0.05, 0.7]),
                            np.array([0.2, 0.2, 0.2, 0.001]), np.zeros(4, np.int64), 0.01, 10)
    assert select(scores, CurationRule()).all()
    assert select(scores, CurationRule(min_confidence=0.5)).tolist() == [True, False, True, True]
    assert select(scores, CurationRule(min_realism=0.1, drop_copies=True)).tolist() == [True, True, False, False]
    assert CurationRule(min_confidence=0.5, drop_copies=True).text == "class confidence ≥ 0.5, no suspected copies"
    path = scores.save(tmp_path / "scores.json")
    assert CurationScores.load(path).to_dict() == scores.to_dict()
    path.write_text(json.dumps({**scores.to_dict(), "realism": [0.5]}))
    with pytest.raises(ValueError, match="scores.json.*differ in length"):
        CurationScores.load(path)


def test_curate_cli_writes_a_new_set_naming_parent_rule_and_counts_and_leaves_the_parent(gan_set, monkeypatch,
                                                                                         capsys):
    root, parent = gan_set
    monkeypatch.setenv("LAB_RUNS_DIR", str(root))
    before = hashlib.sha256(parent.read_bytes()).hexdigest(), parent.with_suffix(".json").read_text()
    assert main(["sets", "curate", set_id(parent)]) == 1
    assert "needs a rule" in capsys.readouterr().err
    code = main(["sets", "curate", set_id(parent), "--drop-copies", "--min-confidence", "0.3",
                 "--set", "steps=10", "--set", "folds=2"])
    out = capsys.readouterr().out
    assert code == 0, out
    run = list_runs("curate", root)[0]
    path = run.artifacts / "curated.npz"
    assert f"set {set_id(path)}: kept" in out and f"of the 24 images of {set_id(parent)}" in out
    meta = json.loads(path.with_suffix(".json").read_text())
    curation = meta["curation"]
    assert curation["parent"] == set_id(parent) and curation["rule"] == {"min_confidence": 0.3, "min_realism": 0.0,
                                                                         "drop_copies": True}
    scores = CurationScores.load(run.artifacts / "scores.json")
    keep = select(scores, CurationRule(min_confidence=0.3, drop_copies=True))
    assert curation["kept"] == meta["count"] == keep.sum() and sum(curation["kept_per_class"]) == keep.sum()
    assert curation["kept_per_class"] == np.bincount(scores.labels[keep], minlength=2).tolist()
    provenance, prints = verified_provenance(path, root)
    parent_provenance, parent_prints = verified_provenance(parent, root)
    assert provenance.known and provenance.curation_run == run.id and provenance.run_id == parent_provenance.run_id
    assert sorted(prints.tolist()) == sorted(parent_prints.tolist())  # scored against the generator's own subset
    assert (hashlib.sha256(parent.read_bytes()).hexdigest(), parent.with_suffix(".json").read_text()) == before
    assert [r.id for r in curation_runs(set_id(parent), root)] == [run.id]


def test_curating_what_is_no_verified_set_is_refused_before_anything_is_queued(runs_root, monkeypatch, capsys):
    """An image run's variations (one OCT scan, no dataset behind it) have no real images to be scored against."""
    image_run = Run.create("gpnn", gpnn_config("quick", mode="image", image_path=str(OCT), max_side=32, variations=2,
                                               sifid=False).to_dict(), root=runs_root)
    run_gpnn(image_run)
    image_run.write_status("done")
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])  # queue only: a job queued would show below
    assert main(["sets", "curate", f"{image_run.id}/variations", "--drop-copies", "--detach"]) == 1
    assert f"set {image_run.id}/variations: its provenance is unknown (variations.npz records no provenance)" in \
        capsys.readouterr().err
    assert list_runs("curate", runs_root) == []


def test_a_curated_set_whose_files_are_edited_is_not_believed(gan_set):
    root, parent = gan_set
    run = curate_in_process(root, set_id(parent), CurationRule(min_realism=0.01), name="edited")
    sidecar = run.artifacts / "edited.json"
    meta = json.loads(sidecar.read_text())
    meta["provenance"]["curation_run"] = ""
    sidecar.write_text(json.dumps(meta))
    provenance, prints = verified_provenance(run.artifacts / "edited.npz", root)
    assert not provenance.known and "does not match" in provenance.reason and prints is None


def test_a_review_is_saved_as_it_goes_and_becomes_a_set_of_the_images_not_dropped(gan_set):
    root, parent = gan_set
    run = curate_in_process(root, set_id(parent), None)
    assert not (run.artifacts / "curated.npz").exists()  # no rule: scores only
    save_choices(run, {0: "drop", 1: "keep"}, 24)
    save_choices(run, {2: "drop", 0: "drop"}, 24)
    assert review_choices(Run(run.path)) == {0: "drop", 1: "keep", 2: "drop"}
    with pytest.raises(ValueError, match="images \\[24\\]"):
        save_choices(run, {24: "keep"}, 24)
    path = write_reviewed(run, "reviewed")
    curation = json.loads(path.with_suffix(".json").read_text())["curation"]
    assert curation["review"] == {"kept": [1], "dropped": [0, 2], "unreviewed": 21,
                                  "rule_text": "reviewed by hand (unreviewed images kept)"}
    assert curation["kept"] == 22 and verified_provenance(path, root)[0].known


def test_a_study_refuses_a_curated_set_whose_models_saw_real_images_outside_the_seed_subset(gan_set, pneumonia):
    root, parent = gan_set
    subset = pneumonia.train.stratified_subset(0.1, 0)
    inside = [int(i) for i in np.flatnonzero(np.isin(fingerprints(pneumonia.train.images),
                                                     fingerprints(subset.images)))[[0, -1]]]
    gpnn = Run.create("gpnn", gpnn_config("quick", mode="seeds", dataset=PNEUMONIA, seed_indices=inside,
                                          variations=3, iters=2, fine_levels=1, fine_iters=1,
                                          sifid=False).to_dict(), root=root)
    run_gpnn(gpnn)
    gpnn.write_status("done")
    gpnn_set = set_id(gpnn.artifacts / "gpnn_variations.npz")
    curated_gan = curate_in_process(root, set_id(parent), CurationRule(min_realism=0.01), name="gan")
    curated_gpnn = curate_in_process(root, gpnn_set, CurationRule(min_realism=0.01), name="gpnn")

    def study(ref: str) -> StudyConfig:
        return StudyConfig(dataset=PNEUMONIA, train_fraction=0.1, seeds=[0],
                           arms=[ArmConfig("real only"), ArmConfig("real + set", "synthetic", ref)],
                           train=TrainConfig(steps=4, batch_size=8, eval_every=4))

    assert check_sets(study(gpnn_set), pneumonia, root) == {}  # its seeds lie inside the subset
    assert check_sets(study(set_id(curated_gan.artifacts / "gan.npz")), pneumonia, root) == {}
    # its scoring models learned from the whole split (the split its generator's seeds were drawn from)
    outside = int((~np.isin(fingerprints(pneumonia.train.images), fingerprints(subset.images))).sum())
    with pytest.raises(SetRefused, match=f"its generator and curation models learned from .* {outside} of them "
                                         "outside"):
        check_sets(study(set_id(curated_gpnn.artifacts / "gpnn.npz")), pneumonia, root)
    assert resolve_set(gpnn_set, root).exists()


def test_a_set_of_a_gan_given_hand_picked_images_is_scored_against_exactly_those(runs_root, pneumonia):
    """A GAN run given its training images as indices (not the stratified draw its fraction and seed name) is
    scored against exactly the images it learned from, by its verified fingerprints."""
    picked = sorted(np.flatnonzero(pneumonia.train.labels == 0)[:30].tolist() +
                    np.flatnonzero(pneumonia.train.labels == 1)[-30:].tolist())
    config = make_config("dcgan", "quick", dataset=PNEUMONIA, train_fraction=0.1, seed=0, train_indices=picked,
                         steps=2, export_per_class=6, sample_every=1000, checkpoint_every=1000)
    run = Run.create("gan", config.to_dict(), root=runs_root)
    gan.run(run)
    run.write_status("done")
    scored = curate_in_process(runs_root, set_id(run.artifacts / "synthetic.npz"), None)
    recorded = np.load(scored.checkpoints / "trained_on.npy")
    assert np.array_equal(np.sort(recorded), np.sort(fingerprints(pneumonia.train.images[picked])))
