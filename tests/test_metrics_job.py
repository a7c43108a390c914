"""The score job end to end: sets in, scores.json / scores.csv / galleries out, in Inception's feature space and
the lab encoder's (withheld when it did not learn); CLI and leaderboard."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import metrics.inception
from data.datasets import Dataset, DatasetSpec
from data.files import atomic_write_json
from data.hooks import Hooks, Interrupted
from data.imageset import ImageSet
from data.synthetic import load_set, save_set
from lab.cli import main as cli_main
from lab.cli.score import format_table, resolve_sets
from lab.engine import jobs
from lab.engine.runs import Run, list_runs
from lab.kinds.score import run as score_job
from lab.leaderboard import leaderboard_rows
from lab.study.summary import ArmSummary, StudySummary, write_summary
from metrics.inception import FEATURE_SPACE
from metrics.scores import CLASS_MATCHED, ENCODER, INCEPTION, Scores
from metrics.scoring import ScoreConfig, sample_of, score_sets
from metrics.stats import Estimate, PairedComparison

SPEC = DatasetSpec(name="pneumoniamnist", size=28).to_dict()
TINY_ENCODER = {"width": 8, "feature_dim": 16, "batch_size": 128, "min_steps": 40, "eval_every": 10}
# Inception costs about 0.2-0.5 s per image on a CPU: a 30-image real reference and 20 images per set
SMALL_INCEPTION = {"inception_real_images": 30, "inception_synthetic_images": 20}


def make_sets(pneumonia, root) -> dict[str, str]:
    """Three 'generators': noisy copies of held-out images, pure noise, and one that memorised."""
    rng = np.random.default_rng(0)
    val = pneumonia.val.take(np.arange(150))
    noisy = np.clip(val.images + rng.normal(0, 6, val.images.shape), 0, 255).astype(np.uint8)
    noise = rng.integers(0, 256, val.images.shape, dtype=np.uint8)
    copies = pneumonia.train.take(np.arange(150))
    sets = {"good": noisy, "noise": noise, "copier": copies.images}
    labels = {"good": val.labels, "noise": val.labels, "copier": copies.labels}
    gan_run = Run.create("gan", {}, root=root, name="fake")
    gan_run.write_status("done")  # finished, so the queue never starts it
    run_dir = gan_run.artifacts
    return {name: str(save_set(ImageSet(images, labels[name], pneumonia.class_names, "synthetic"), run_dir, name,
                               generator=name, dataset=SPEC, train_seconds=12.5))
            for name, images in sets.items()}


@pytest.fixture(scope="module")
def scored_root(pneumonia, tmp_path_factory):
    """One score job for the module's tests (scoring is the slow part)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_RUNS_DIR", str(root))
        mp.setenv("LAB_CACHE_DIR", str(root / "cache"))
        sets = make_sets(pneumonia, root)
        run = Run.create("score", {"sets": list(sets.values()), "pairings": ["nearest", "random"],
                                   "encoder": TINY_ENCODER, **SMALL_INCEPTION})
        score_job(run)
        run.write_status("done")
        yield root, run, sets


@pytest.fixture
def scored(scored_root, monkeypatch):
    root, run, sets = scored_root
    monkeypatch.setenv("LAB_RUNS_DIR", str(root))
    monkeypatch.setenv("LAB_CACHE_DIR", str(root / "cache"))
    return run, sets


def test_score_job_ranks_copies_noise_and_noisy_images_sensibly(scored, pneumonia):
    run, sets = scored
    scores = Scores.load(run.artifacts / "scores.json")
    by_name = {s.generator: s for s in scores.sets}
    assert "lab-cnn-16d" in scores.encoder_name and scores.encoder.withheld == ""
    assert scores.encoder.val_balanced_accuracy > 0.6 and scores.encoder.p_value < 0.01
    good, noise, copier = by_name["good"], by_name["noise"], by_name["copier"]
    for key in ("psnr", "ssim", "haarpsi"):
        g, n = good.pairings["nearest"].metrics[key], noise.pairings["nearest"].metrics[key]
        assert g.lo > n.hi, key  # intervals separate
        assert g.n == 150 and set(g.per_class) == {"normal", "pneumonia"}
    for key in ("ms_gmsd", "mdsi"):
        assert good.pairings["nearest"].metrics[key].hi < noise.pairings["nearest"].metrics[key].lo
    assert copier.pairings["nearest"].metrics["ssim"].mean > 0.999
    for space in (INCEPTION, ENCODER):
        assert good.distribution_in(space).fid < noise.distribution_in(space).fid, space
        assert good.distribution_in(space, CLASS_MATCHED).fid < noise.distribution_in(space, CLASS_MATCHED).fid, space
        assert noise.distribution_in(space).precision < good.distribution_in(space).precision, space
    assert good.distribution_in(INCEPTION).feature_space == FEATURE_SPACE
    assert good.distribution_in(ENCODER).feature_space == scores.encoder_name
    # Inception saw the capped samples, the encoder every image
    assert (good.distribution_in(INCEPTION).n_real, good.distribution_in(INCEPTION).n_synthetic) == (30, 20)
    assert good.distribution_in(ENCODER).n_synthetic == 150
    assert scores.inception.real_images == 30 and scores.inception.train_images == len(pneumonia.train)
    assert copier.memorization.suspected_fraction.mean == 1.0
    assert good.memorization.suspected_fraction.mean < 0.2
    assert copier.memorization.closest[0].distance < 1e-3
    # nearest pairing flatters every set compared with random pairing, as it should
    assert good.pairings["nearest"].metrics["psnr"].mean > good.pairings["random"].metrics["psnr"].mean
    assert (run.artifacts / good.gallery).exists()


def test_typed_scores_write_back_exactly_the_json_they_were_read_from(scored):
    run, _ = scored
    text = (run.artifacts / "scores.json").read_text()
    assert json.dumps(Scores.load(run.artifacts / "scores.json").to_dict(), indent=2, default=str) == text


def test_a_malformed_scores_file_is_refused_with_its_name(tmp_path):
    broken = tmp_path / "scores.json"
    broken.write_text(json.dumps({"sets": [{"name": "x"}]}))
    with pytest.raises(ValueError, match="scores.json"):
        Scores.load(broken)


def test_scores_csv_has_a_row_per_set_pairing_metric_and_class(scored):
    run, sets = scored
    rows = list(csv.DictReader((run.artifacts / "scores.csv").open()))
    classes_present = [len(np.unique(load_set(p).labels)) for p in sets.values()]
    ssim_rows = [r for r in rows if r["metric"] == "SSIM"]
    assert len(ssim_rows) == sum(2 * (1 + k) for k in classes_present)  # pairings × (all + each class)
    assert {r["direction"] for r in rows if r["metric"] == "MS-GMSD"} == {"↓"}
    assert any(r["metric"] == "FID" for r in rows) and any(r["metric"] == "suspected copies" for r in rows)
    encoder = Scores.load(run.artifacts / "scores.json").encoder
    fid_rows = [r for r in rows if r["metric"] == "FID"]
    assert {r["feature space"] for r in fid_rows} == {FEATURE_SPACE, encoder.name}
    assert len(fid_rows) == 3 * 2 * 2  # sets × feature spaces × (train split, class-matched)
    for r in fid_rows:  # every encoder number carries the encoder's validation accuracy, Inception's none
        assert r["encoder accuracy"] == ("" if r["feature space"] == FEATURE_SPACE else encoder.accuracy_text)
    assert "val balanced acc" in encoder.accuracy_text and "chance 0.50" in encoder.accuracy_text


def test_cli_table_names_each_feature_space_and_prints_the_encoder_accuracy_beside_its_numbers(scored):
    run, _ = scored
    scores = Scores.load(run.artifacts / "scores.json")
    table = format_table(scores)
    assert f"Inception: {FEATURE_SPACE}; real reference: 30 of " in table
    assert "at most 20 images per synthetic set" in table
    inception_lines = [line for line in table.splitlines() if line.strip().startswith("Inception ")]
    encoder_lines = [line for line in table.splitlines() if line.strip().startswith("encoder ")]
    assert len(inception_lines) == len(encoder_lines) == 3 * 2
    assert all(scores.encoder.accuracy_text in line and "FID↓" in line for line in encoder_lines)
    assert "suspected copies 150/150 = 100.0% [97.6%, 100.0%]" in table  # the copier, exact interval


def test_a_resumed_job_reuses_finished_sets_and_the_cached_real_inception_statistics(scored, monkeypatch):
    run, _ = scored
    checkpoint = run.checkpoints / "set_0.json"
    marked = {**json.loads(checkpoint.read_text()), "name": "from-checkpoint"}
    atomic_write_json(checkpoint, marked)

    def no_network(*args, **kwargs):
        raise AssertionError("the real Inception statistics should come from the cache")

    monkeypatch.setattr(metrics.inception, "inception_features", no_network)
    score_job(run)
    names = [s.name for s in Scores.load(run.artifacts / "scores.json").sets]
    assert names[0] == "from-checkpoint"


def test_leaderboard_has_one_row_per_set_joins_the_study_gain_and_skips_unreadable_runs(scored, scored_root):
    run, sets = scored
    runs_root = scored_root[0]
    study = Run.create("study", {})
    gain = PairedComparison(Estimate(0.021, 0.004, 0.038, 3), 0.03)
    write_summary(study.artifacts, StudySummary(
        DatasetSpec.from_dict(SPEC), 1.0, [0, 1, 2], "balanced_accuracy", "real", ["normal", "pneumonia"], None,
        [ArmSummary("real", "real", None, {}, [], [], [], [0, 1, 2]),
         ArmSummary("good", "synthetic", sets["good"], {}, [], [], [], [0, 1, 2], verdict="+2.1 points",
                    vs_baseline={"balanced_accuracy": gain})]))
    study.write_status("done")
    for kind, name in (("study", "summary.json"), ("score", "scores.json")):  # newer runs with broken files
        broken = Run.create(kind, {})
        (broken.artifacts / name).write_text('{"arms": [{"arm": 1}], "sets": [{}]}')
        broken.write_status("done")
    rows = {r["generator"]: r for r in leaderboard_rows(runs_root)}
    assert set(rows) == {"good", "noise", "copier"}
    assert rows["good"]["downstream gain (points)"] == pytest.approx(2.1)
    assert rows["good"]["verdict"] == "+2.1 points" and rows["good"]["score run"] == run.id
    assert rows["noise"]["downstream gain (points)"] is None
    assert rows["copier"]["suspected copies ↓"] == 1.0 and rows["good"]["train time (s)"] == 12.5
    assert rows["good"]["FID (Inception) ↓"] < rows["noise"]["FID (Inception) ↓"]
    assert rows["good"]["FID (encoder) ↓"] < rows["noise"]["FID (encoder) ↓"]
    assert rows["good"]["encoder"].startswith("val balanced acc")


def test_cli_scores_a_run_id_and_writes_the_tables_to_out(runs_root, pneumonia, tmp_path, capsys):
    sets = make_sets(pneumonia, runs_root)
    gan_run = Path(sets["good"]).parent.parent.name
    assert resolve_sets([gan_run]) == sorted(resolve_sets(list(sets.values())))
    out = tmp_path / "out"
    code = cli_main(["score", sets["good"], sets["noise"], "--pairing", "both", "--no-distribution",
                     "--no-prescreen", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "SSIM↑" in printed and "MS-GMSD↓" in printed and "suspected copies" in printed
    assert [s.generator for s in Scores.load(out / "scores.json").sets] == ["good", "noise"]
    assert (out / "scores.csv").exists()


def test_cli_options_reach_the_job_config(runs_root, pneumonia, monkeypatch):
    sets = make_sets(pneumonia, runs_root)
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])  # queue only
    assert cli_main(["score", sets["good"], "--inception-real", "500", "--inception-synthetic", "200",
                     "--detach"]) == 0
    assert cli_main(["score", sets["good"], "--no-inception", "--detach"]) == 0
    configs = [ScoreConfig.from_dict(r.settings) for r in list_runs("score")]
    capped, skipped = (next(c for c in configs if c.inception is on) for on in (True, False))
    assert (capped.inception, capped.inception_real_images, capped.inception_synthetic_images) == (True, 500, 200)
    assert skipped.inception is False and skipped.distribution is True


def test_an_encoder_that_cannot_learn_has_its_numbers_withheld_in_the_scores_csv_and_table(pneumonia, runs_root,
                                                                                         monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(runs_root / "cache"))
    rng = np.random.default_rng(0)

    def random_labels(split) -> ImageSet:  # nothing in the images predicts these labels
        part = split.take(np.arange(200))
        return ImageSet(part.images, rng.integers(0, 2, len(part)), part.class_names, part.split, "random-labels")

    data = Dataset(DatasetSpec.from_dict(SPEC), {split: random_labels(pneumonia.splits[split])
                                                 for split in ("train", "val")})
    sets = make_sets(pneumonia, runs_root)
    scores = score_sets(data, ScoreConfig(sets=[sets["good"]], inception=False, encoder=TINY_ENCODER))
    assert "not clearly above chance, encoder-space metrics withheld" in scores.encoder.withheld
    assert scores.sets[0].distribution == []  # no encoder numbers at all (and Inception was off)
    rows = scores.table_rows()
    assert not any(r["metric"] == "FID" for r in rows)
    assert [r["encoder accuracy"] for r in rows if r["metric"] == "withheld"] == [scores.encoder.withheld]
    assert f"withheld: {scores.encoder.withheld}" in format_table(scores)


def test_inception_samples_keep_each_class_share_and_never_exceed_the_cap(derma):
    sample = sample_of(derma.train, 700, seed=1)
    assert len(sample) == 700 and len(np.unique(sample.images.reshape(700, -1), axis=0)) == 700
    share = derma.train.class_counts() / len(derma.train)
    assert np.all(np.abs(sample.class_counts() - 700 * share) <= 1)
    assert sample_of(derma.train, 10**6) is derma.train


def test_cli_refuses_a_missing_set(runs_root, capsys):
    assert cli_main(["score", "/nowhere/set.npz"]) == 1
    assert "synthetic set not found: /nowhere/set.npz" in capsys.readouterr().err


def test_a_cancelled_job_stops_after_the_current_set_and_keeps_it(runs_root, pneumonia):
    sets = make_sets(pneumonia, runs_root)
    run = Run.create("score", {"sets": [sets["good"], sets["noise"]], "distribution": False})
    run.stop_requested = True  # as after SIGTERM
    with pytest.raises(Interrupted):
        score_job(run)
    assert (run.checkpoints / "set_0.json").exists() and not (run.checkpoints / "set_1.json").exists()
    assert not (run.artifacts / "scores.json").exists()
    run.stop_requested = False
    score_job(run)  # resumed: finishes the second set
    assert len(Scores.load(run.artifacts / "scores.json").sets) == 2


def test_a_set_that_does_not_fit_the_dataset_is_refused_before_any_work_naming_its_file(runs_root, pneumonia,
                                                                                        derma, capsys):
    good = make_sets(pneumonia, runs_root)["good"]
    holder = Run.create("gan", {}, root=runs_root, name="skin")
    holder.write_status("done")
    skin = derma.train.take(np.arange(70))  # grayscale 28 px like the dataset, but 7 classes
    gray = skin.images.mean(-1, keepdims=True).astype(np.uint8)
    wrong = str(save_set(ImageSet(gray, skin.labels, derma.class_names, "synthetic"), holder.artifacts,
                         "skin", generator="other", dataset=SPEC))
    assert cli_main(["score", good, wrong, "--no-prescreen"]) == 1
    err = capsys.readouterr().err
    assert "skin.npz" in err and "good.npz" not in err and "7 classes" in err
    assert list_runs("score") == []  # refused before queuing
    config = ScoreConfig(sets=[good, wrong], inception=False, encoder=TINY_ENCODER)
    with pytest.raises(ValueError, match=r"skin\.npz: .*7 classes"):
        score_sets(pneumonia, config, hooks=Hooks(event=lambda **e: pytest.fail(f"work started: {e}")))
