"""Every synthetic set records what its generator learned from; uploads are unknown; a set drawn
twice is one set; sets are joined by id, so moving the runs folder keeps the leaderboard whole."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

from data.datasets import DatasetSpec
from data.files import read_json
from data.imageset import ImageSet
from data.provenance import Provenance, digest, fingerprints, leak_report, read_provenance
from data.synthetic import load_set, save_set, set_id, to_folder_zip
from data.uploads import register_upload
from gans.checkpoint import generator_provenance, load_generator
from gans.config import make_config
from gans.sampling import synthesize
from lab.engine.runs import Run
from lab.kinds import gan as gan_job
from lab.kinds import sample as sample_job
from lab.kinds.score import run as score_job
from lab.leaderboard import leaderboard_rows
from lab.sampling import SampleConfig, sample_result
from lab.sets import draw, list_sets, resolve_set
from lab.study.summary import ArmSummary, StudySummary, write_summary
from metrics.stats import Estimate, PairedComparison

PNEUMONIA = {"source": "medmnist", "name": "pneumoniamnist", "size": 28}
TINY = dict(latent=8, width=8, batch_size=8, steps=2, log_every=1, sample_every=100, checkpoint_every=100,
            export_per_class=3, device="cpu", dataset=PNEUMONIA)


def train_gan(seed: int = 0, fraction: float = 0.1, **overrides) -> Run:
    run = Run.create("gan", make_config("dcgan", **{**TINY, "seed": seed, "train_fraction": fraction,
                                                    **overrides}).to_dict())
    gan_job.run(run)
    run.write_status("done")
    return run


def sample(gan_run: Run, per_class: int, seed: int, name: str, generator=None, origin=None) -> Run:
    config = SampleConfig(generator=str(generator or gan_run.checkpoints / "generator.pt"),
                          origin=gan_run.id if origin is None else origin, per_class=per_class, seed=seed, name=name)
    job = Run.create("sample", config.to_dict())
    sample_job.run(job)
    job.write_status("done")
    return job


def test_a_gan_runs_set_and_generator_record_exactly_the_fingerprints_of_its_training_subset(runs_root, pneumonia):
    run = train_gan(seed=3, fraction=0.1)
    subset = pneumonia.train.stratified_subset(0.1, seed=3)
    provenance, trained_on = read_provenance(run.artifacts / "synthetic.npz")
    assert provenance.known and provenance.run_id == run.id and provenance.generator == "dcgan"
    assert (provenance.dataset.name, provenance.split, provenance.train_fraction, provenance.subset_seed) == \
        ("pneumoniamnist", "train", 0.1, 3)
    assert provenance.real_images == len(subset) == len(trained_on)
    assert sorted(trained_on.tolist()) == sorted(fingerprints(subset.images).tolist())
    assert provenance.config["seed"] == 3 and provenance.config["train_fraction"] == 0.1
    assert generator_provenance(run.checkpoints / "generator.pt")[0] == provenance

    other = train_gan(seed=4, fraction=0.1)
    other_provenance, other_prints = read_provenance(other.artifacts / "synthetic.npz")
    assert other_provenance.digest != provenance.digest
    assert other_provenance.digest == digest(fingerprints(pneumonia.train.stratified_subset(0.1, seed=4).images))
    assert not np.array_equal(np.sort(other_prints), np.sort(trained_on))


def test_leak_report_counts_generator_images_outside_the_subset_and_in_held_out_splits(pneumonia):
    whole = fingerprints(pneumonia.train.images)
    provenance = Provenance.trained(whole, dataset=DatasetSpec.from_dict(PNEUMONIA), split="train", train_fraction=1.0,
                                    subset_seed=0, generator="dcgan", run_id="r", config={})
    subset = fingerprints(pneumonia.train.stratified_subset(0.1, seed=0).images)
    val, test = fingerprints(pneumonia.val.images), fingerprints(pneumonia.test.images)
    report = leak_report(provenance, whole, subset, val, test)
    # PneumoniaMNIST 28 holds validation images pixel-identical to training images: they count.
    in_val = int(np.isin(whole, val).sum())
    assert in_val > 0
    assert (report.known, report.generator_images, report.subset_images) == (True, len(whole), len(subset))
    assert report.outside_subset == int((~np.isin(whole, subset)).sum()) > len(whole) - len(subset) - 20
    assert (report.in_val, report.in_test) == (in_val, int(np.isin(whole, test).sum()))
    assert report.text.startswith(f"generator trained on {len(whole)} real images, classifier on {len(subset)}; "
                                  f"{report.outside_subset} outside the classifier's subset; {in_val} validation")

    own = leak_report(provenance, whole, whole, val[:0], test[:0])
    assert own.outside_subset == 0 and own.text == f"generator trained on {len(whole)} real images, " \
                                                   f"classifier on {len(whole)}"
    unknown = leak_report(Provenance.unknown("uploaded file x.npz"), None, subset, val, test)
    assert not unknown.known and unknown.outside_subset is None and "uploaded file x.npz" in unknown.text


def test_an_uploaded_set_is_unknown_even_when_its_npz_carries_forged_provenance(runs_root, pneumonia):
    run = train_gan()
    real = load_set(run.artifacts / "synthetic.npz")
    forged = io.BytesIO()
    np.savez(forged, images=real.images, labels=real.labels, class_names=np.array(real.class_names),
             trained_on=fingerprints(pneumonia.train.images[:5]),
             provenance=np.array('{"known": true, "run_id": "forged"}'))
    path = register_upload(forged.getvalue(), "claims.npz", DatasetSpec.from_dict(PNEUMONIA), real.class_names, 1)
    provenance, trained_on = read_provenance(path)
    assert not provenance.known and trained_on is None and "uploaded file claims.npz" in provenance.reason
    with np.load(path) as f:
        assert "trained_on" not in f.files  # the claim is not kept either


def test_provenance_survives_moving_the_runs_folder_but_not_download_and_upload(runs_root, tmp_path, pneumonia,
                                                                                monkeypatch):
    run = train_gan()
    original = read_provenance(run.artifacts / "synthetic.npz")
    moved = tmp_path / "moved"
    shutil.move(runs_root, moved)
    monkeypatch.setenv("LAB_RUNS_DIR", str(moved))
    path = resolve_set(f"{run.id}/synthetic")
    assert path == (moved / "gan" / run.id / "artifacts" / "synthetic.npz").resolve()
    provenance, trained_on = read_provenance(path)
    assert provenance == original[0] and np.array_equal(trained_on, original[1])

    # What leaves the lab as a file comes back as a new set whose provenance is unknown (npz and zip alike).
    spec = DatasetSpec.from_dict(PNEUMONIA)
    for data, name in ((path.read_bytes(), "downloaded.npz"), (to_folder_zip(load_set(path)), "downloaded.zip")):
        again = register_upload(data, name, spec, pneumonia.class_names, 1)
        assert np.array_equal(load_set(again).images, load_set(path).images)
        assert not read_provenance(again)[0].known and set_id(again) != set_id(path)


def test_a_sample_job_copies_its_generator_runs_provenance_and_an_uploaded_generator_is_unknown(runs_root):
    run = train_gan()
    drawn = sample_result(sample(run, per_class=2, seed=5, name="five"))
    assert drawn.identical_to is None and drawn.path.name == "five.npz"
    assert read_provenance(drawn.path)[0] == read_provenance(run.artifacts / "synthetic.npz")[0]

    upload = runs_root / "uploads" / "generators" / "abc.pt"  # where the Samples page keeps an upload
    upload.parent.mkdir(parents=True)
    shutil.copy(run.checkpoints / "generator.pt", upload)  # it even carries the run's real provenance
    uploaded = sample_result(sample(run, per_class=2, seed=5, name="up", generator=upload, origin="upload:g.pt"))
    provenance, trained_on = read_provenance(uploaded.path)
    assert uploaded.identical_to is None and not provenance.known and trained_on is None
    assert provenance.reason == "uploaded generator g.pt"
    claimed = sample_result(sample(run, per_class=2, seed=6, name="claim", generator=upload))  # origin names the run
    assert not read_provenance(claimed.path)[0].known


def test_a_set_drawn_again_with_the_same_generator_seed_and_count_is_the_same_set(runs_root):
    run = train_gan()  # exports 3 per class with its seed 0: <run>/synthetic
    before = [s.id for s in list_sets()]
    job = sample(run, per_class=3, seed=0, name="dcgan_3pc_seed0")  # the Samples page's default export name
    result = sample_result(job)
    assert result.identical_to == result.set_id == f"{run.id}/synthetic"
    assert result.path == (run.artifacts / "synthetic.npz").resolve()
    assert not list(job.artifacts.glob("*.npz")) and [s.id for s in list_sets()] == before
    gan, _, class_names = load_generator(run.checkpoints / "generator.pt")
    assert np.array_equal(synthesize(gan, 3, class_names, seed=0).images, load_set(result.path).images)

    # A set written twice anyway (another writer, same draw) is listed once: the first one made.
    again = save_set(load_set(result.path), job.artifacts, "copy", generator="dcgan", draw=draw(run.id, 0, 3))
    assert [s.id for s in list_sets()] == before
    assert {s.id for s in list_sets(duplicates=True)} == {*before, set_id(again)}
    assert sample_result(sample(run, per_class=3, seed=1, name="seed1")).identical_to is None


def test_the_leaderboard_joins_a_study_to_the_scores_of_its_set_after_the_runs_folder_moved(runs_root, tmp_path,
                                                                                           monkeypatch, pneumonia):
    run = train_gan(export_per_class=10)
    scored = Run.create("score", {"sets": [str(run.artifacts / "synthetic.npz")], "metrics": ["psnr"],
                                  "distribution": False, "gallery_size": 0})
    score_job(scored)
    scored.write_status("done")

    moved = tmp_path / "moved"
    shutil.move(runs_root, moved)
    monkeypatch.setenv("LAB_RUNS_DIR", str(moved))
    new_path = str(moved / "gan" / run.id / "artifacts" / "synthetic.npz")  # a study made after the move
    study = Run.create("study", {})
    gain = PairedComparison(Estimate(0.03, 0.01, 0.05, 3), 0.02)
    write_summary(study.artifacts, StudySummary(
        dataset=DatasetSpec.from_dict(PNEUMONIA), train_fraction=0.1, seeds=[0, 1, 2],
        primary_metric="balanced_accuracy", baseline="real", class_names=pneumonia.class_names, study_run=None,
        arms=[ArmSummary("real", "real", None, {}, [], [], [], [0, 1, 2]),
              ArmSummary("real + dcgan", "synthetic", new_path, {}, [], [], [], [0, 1, 2], verdict="+3.0 points",
                         vs_baseline={"balanced_accuracy": gain})]))
    study.write_status("done")

    [row] = leaderboard_rows(moved)
    assert row["set id"] == f"{run.id}/synthetic" and row["path"] == str(resolve_set(new_path))
    assert row["downstream gain (points)"] == pytest.approx(3.0) and row["verdict"] == "+3.0 points"
    scores = read_json(moved / "score" / scored.id / "artifacts" / "scores.json")
    assert scores["sets"][0]["path"] != new_path  # it was scored at the old place


def test_set_ids_resolve_under_the_runs_folder_and_refuse_what_is_not_a_set(runs_root, pneumonia):
    run = train_gan()
    path = run.artifacts / "synthetic.npz"
    assert set_id(path) == set_id(str(path)) == f"{run.id}/synthetic" == list_sets()[0].id
    assert resolve_set(f"{run.id}/synthetic") == resolve_set(path) == path.resolve()
    for ref in (f"{run.id}/missing", "../synthetic", "no-slash", f"{run.id}/../x", str(runs_root / "none.npz")):
        with pytest.raises(FileNotFoundError, match="not found|neither a set id|no synthetic set"):
            resolve_set(ref)


def test_a_set_saved_without_provenance_is_unknown_and_a_tampered_one_is_refused_by_name(tmp_path, pneumonia):
    images = ImageSet(pneumonia.train.images[:4], pneumonia.train.labels[:4], pneumonia.class_names, "synthetic")
    plain = save_set(images, tmp_path / "a" / "artifacts", "plain", generator="hand")
    assert not read_provenance(plain)[0].known
    prints = fingerprints(pneumonia.train.images[:10])
    provenance = Provenance.trained(prints, dataset=DatasetSpec.from_dict(PNEUMONIA), split="train",
                                    train_fraction=1.0, subset_seed=0, generator="dcgan", run_id="r", config={})
    with pytest.raises(ValueError, match="bad.npz: the fingerprints it stores"):
        save_set(images, tmp_path / "a" / "artifacts", "bad", provenance, prints[:9])
    good = save_set(images, tmp_path / "a" / "artifacts", "good", provenance, prints)
    with np.load(good) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(good, **{**arrays, "trained_on": prints[:9]})
    with pytest.raises(ValueError, match="good.npz: the fingerprints it stores"):
        read_provenance(good)


def test_a_singan_seeds_set_records_its_seed_images(runs_root, pneumonia):
    from gans.singan_train import singan_config
    from lab.kinds.singan import run as run_singan

    config = singan_config("tiny", mode="seeds", dataset=PNEUMONIA, seeds_per_class=1, variations=2, seed=7,
                           max_side=28, min_side=12, stages=2, iters=2, width=8)
    run = Run.create("singan", config.to_dict())
    run_singan(run)
    provenance, trained_on = read_provenance(run.artifacts / "singan_variations.npz")
    seeds = read_json(run.artifacts / "seeds.json")["indices"]
    assert (provenance.known, provenance.generator, provenance.run_id, provenance.real_images) == \
        (True, "singan", run.id, 2)
    assert trained_on.tolist() == fingerprints(pneumonia.train.images[seeds]).tolist()
