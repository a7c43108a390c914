"""The cheap pre-screen: train on a synthetic set alone, test on the real test split (the
classification accuracy score), as a function, in the score job, in the CLI and in the leaderboard."""
from __future__ import annotations

import numpy as np
import pytest

from classifier.evaluate import CLASSIFICATION_METRICS
from classifier.prescreen import CAS_BUDGET, REAL_ONLY, Prescreen, classification_accuracy_score
from classifier.train import TrainConfig
from data.datasets import DatasetSpec
from data.files import atomic_write_json
from data.imageset import ImageSet
from data.synthetic import save_set
from lab.cli import main as cli_main
from lab.cli.score import format_prescreen
from lab.engine import jobs
from lab.engine.runs import Run, list_runs
from lab.kinds.score import run as score_job
from lab.leaderboard import leaderboard_rows
from metrics.scores import Scores
from metrics.scoring import ScoreConfig

SPEC = DatasetSpec(name="pneumoniamnist", size=28).to_dict()


def test_the_score_is_measured_on_the_real_test_split(pneumonia):
    synthetic = pneumonia.train.take(np.arange(64))
    scores = classification_accuracy_score(synthetic, pneumonia, TrainConfig(steps=4, batch_size=16, eval_every=4))
    confusion = np.array(scores["confusion"])
    assert confusion.sum() == len(pneumonia.test)
    assert np.array_equal(confusion.sum(1), pneumonia.test.class_counts())
    assert all(0 <= scores[m] <= 1 for m in ("accuracy", "balanced_accuracy", "macro_f1", "auc_ovr"))


def test_a_set_that_does_not_fit_the_dataset_is_refused_before_training(pneumonia, derma):
    with pytest.raises(ValueError, match=r"images are \(28, 28, 3\).*dataset's are \(28, 28, 1\)"):
        classification_accuracy_score(derma.train.take(np.arange(8)), pneumonia)
    outside = ImageSet(pneumonia.train.images[:8], np.full(8, 5), pneumonia.class_names, source="odd")
    with pytest.raises(ValueError, match=r"odd: needs images labelled 0\.\.1"):
        classification_accuracy_score(outside, pneumonia)


def make_sets(pneumonia, root) -> dict[str, str]:
    """A set of real training images, one whose classes are not the dataset's, one made from another dataset."""
    gan = Run.create("gan", {}, root=root, name="fake")
    gan.write_status("done")  # finished, so the queue never starts it
    part = pneumonia.train.take(np.arange(64))
    sets = {"good": (part, SPEC),
            "wrong-classes": (ImageSet(part.images, part.labels, ["cat", "dog"]), SPEC),
            "other-dataset": (part, DatasetSpec(name="dermamnist", size=28).to_dict())}
    return {name: str(save_set(images, gan.artifacts, name, display_name=name, generator=name, dataset=dataset))
            for name, (images, dataset) in sets.items()}


@pytest.fixture(scope="module")
def prescreened(pneumonia, tmp_path_factory):
    """One score job with the pre-screen at a 4-step budget (the classifiers are the slow part)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_RUNS_DIR", str(root))
        sets = make_sets(pneumonia, root)
        run = Run.create("score", {"sets": list(sets.values()), "dataset": SPEC, "distribution": False,
                                   "prescreen": True, "prescreen_steps": 4})
        score_job(run)
        run.write_status("done")
        yield root, run


def test_the_score_job_prescreens_each_set_beside_the_real_only_classifier_and_the_majority_class(prescreened,
                                                                                                 pneumonia):
    _, run = prescreened
    prescreen = Prescreen.load(run.artifacts / "prescreen.json")
    assert prescreen.train == CAS_BUDGET.replace(steps=4)  # the study's classifier settings at a small budget
    assert prescreen.test_images == len(pneumonia.test)
    majority = int(np.argmax(pneumonia.train.class_counts()))
    assert prescreen.trivial.majority_class == pneumonia.class_names[majority]
    assert prescreen.trivial.majority_rate == pytest.approx(pneumonia.test.class_counts()[majority]
                                                            / len(pneumonia.test))
    real, (good, wrong, other) = prescreen.real, prescreen.sets
    assert (real.name, real.images) == (REAL_ONLY, len(pneumonia.train))
    assert (good.name, good.images, good.message) == ("good", 64, "")
    for measured in (real, good):
        assert set(measured.scores) == set(CLASSIFICATION_METRICS)
        assert all(0 <= v <= 1 for v in measured.scores.values())
    # sets that do not fit the dataset get a message each, and the job still finishes
    assert wrong.scores == {} and wrong.message == ("wrong-classes: its classes (cat, dog) are not the dataset's "
                                                    "(normal, pneumonia)")
    assert other.scores == {} and other.message == "other-dataset: made from dermamnist, not pneumoniamnist"
    assert len(Scores.load(run.artifacts / "scores.json").sets) == 3


def test_the_prescreen_reports_its_progress_and_keeps_each_finished_classifier(prescreened):
    _, run = prescreened
    assert [e["name"] for e in run.events("prescreen")] == [REAL_ONLY, "good", "wrong-classes", "other-dataset"]
    assert [e["stage"] for e in run.events("stage") if e["stage"].startswith("pre-screen")] == [
        f"pre-screen {i}/4 {name}" for i, name in enumerate([REAL_ONLY, "good.npz", "wrong-classes.npz",
                                                             "other-dataset.npz"], 1)]
    assert run.events("eval")  # the classifiers' own validation events
    progress = run.status()["progress"]
    assert progress["done"] == progress["total"] and progress["message"] == "pre-screened 3 set(s)"
    kept = sorted(p.name for p in run.checkpoints.iterdir() if p.name.startswith("prescreen"))
    assert kept == [f"prescreen_{i}.json" for i in range(4)]  # each classifier's own folder removed once kept


def test_a_resumed_job_keeps_the_classifiers_it_finished(prescreened):
    _, run = prescreened
    good = Prescreen.load(run.artifacts / "prescreen.json").sets[0]
    kept = run.checkpoints / "prescreen_1.json"
    marked = {**good.to_dict(), "scores": {m: 0.123 for m in CLASSIFICATION_METRICS}}
    atomic_write_json(kept, marked)
    score_job(run)
    assert Prescreen.load(run.artifacts / "prescreen.json").sets[0].scores["balanced_accuracy"] == 0.123
    atomic_write_json(kept, good.to_dict())
    score_job(run)  # as it was, for the other tests


def test_the_leaderboard_row_of_each_set_carries_its_prescreen_beside_the_real_only_reference(prescreened):
    root, run = prescreened
    prescreen = Prescreen.load(run.artifacts / "prescreen.json")
    rows = {r["generator"]: r for r in leaderboard_rows(root)}
    good = rows["good"]
    assert good["CAS balanced acc ↑"] == prescreen.sets[0].scores["balanced_accuracy"]
    assert good["CAS AUC ↑"] == prescreen.sets[0].scores["auc_ovr"]
    assert good["CAS real-only balanced acc"] == prescreen.real.scores["balanced_accuracy"]
    assert rows["wrong-classes"]["CAS balanced acc ↑"] is None  # not measured: no number
    # a newer score job without the pre-screen keeps the set's newest measured one on the board
    newer = Run.create("score", {"sets": [run.config["sets"][0]], "dataset": SPEC, "distribution": False},
                       root=root)
    score_job(newer)
    newer.write_status("done")
    good = {r["generator"]: r for r in leaderboard_rows(root)}["good"]
    assert good["score run"] == newer.id
    assert good["CAS balanced acc ↑"] == prescreen.sets[0].scores["balanced_accuracy"]


def test_a_malformed_prescreen_file_is_refused_with_its_name_and_leaves_the_board_whole(prescreened, tmp_path):
    root, run = prescreened
    broken = tmp_path / "prescreen.json"
    written = Prescreen.load(run.artifacts / "prescreen.json").to_dict()
    atomic_write_json(broken, {**written, "real": {**written["real"], "scores": {"accuracy": 0.9}}})
    with pytest.raises(ValueError, match=r"prescreen\.json is not a readable pre-screen file: KeyError"):
        Prescreen.load(broken)
    newer = Run.create("score", {"sets": [run.config["sets"][0]], "dataset": SPEC, "distribution": False,
                                 "prescreen": True}, root=root)
    (newer.artifacts / "scores.json").write_bytes((run.artifacts / "scores.json").read_bytes())
    (newer.artifacts / "prescreen.json").write_text("{not json")
    newer.write_status("done")
    good = {r["generator"]: r for r in leaderboard_rows(root)}["good"]  # the unreadable pre-screen is passed over
    assert good["CAS balanced acc ↑"] == Prescreen.load(run.artifacts / "prescreen.json").sets[0].scores[
        "balanced_accuracy"]


def test_the_cli_table_shows_every_classifier_and_why_a_set_has_none(prescreened):
    _, run = prescreened
    text = format_prescreen(Prescreen.load(run.artifacts / "prescreen.json"))
    assert "(4 steps x 64 images; real test split of 624 images)" in text
    lines = text.splitlines()
    assert any(line.strip().startswith("good ") and "Balanced accuracy 0." in line for line in lines)
    assert any(line.strip().startswith(REAL_ONLY) for line in lines)
    assert any(line.strip().startswith("always pneumonia") and "Accuracy 0.625" in line for line in lines)
    assert "not measured: wrong-classes: its classes (cat, dog)" in text


def test_cli_prescreens_small_images_by_default_and_takes_the_flags(runs_root, pneumonia, monkeypatch):
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])  # queue only
    sets = make_sets(pneumonia, runs_root)
    chosen = {}
    for flags in ([], ["--no-prescreen"], ["--prescreen"]):
        before = {r.id for r in list_runs("score")}
        assert cli_main(["score", sets["good"], "--detach", *flags]) == 0
        [run] = [r for r in list_runs("score") if r.id not in before]
        chosen[" ".join(flags)] = ScoreConfig.from_dict(run.settings).prescreen
    assert chosen == {"": True, "--no-prescreen": False, "--prescreen": True}  # 28 px is cheap: on unless told
