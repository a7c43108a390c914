"""Quality page in Streamlit's AppTest: launch a score job (Inception and the pre-screen on by default, with their
cost), read a finished one (each feature space named, the encoder's accuracy or why its numbers are withheld; the
pre-screen per set), register an upload."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from classifier.evaluate import Trivial
from classifier.prescreen import REAL_ONLY, CasScores, Prescreen
from classifier.train import TrainConfig
from data.datasets import DatasetSpec
from data.device import resolve_device
from data.files import atomic_write_json
from data.imageset import ImageSet
from data.paths import cache_dir
from data.synthetic import save_set, set_id
from lab.engine import jobs
from lab.engine.runs import Run, list_runs
from lab.kinds.score import run as score_job
from lab.sets import list_sets
from metrics.inception import FEATURE_SPACE, PREPROCESSING
from metrics.scores import (CLASS_MATCHED, ENCODER, INCEPTION, TRAIN_SPLIT, DistributionScores, EncoderSummary,
                            InceptionSummary, Scores)

PAGES = Path(__file__).resolve().parent.parent / "pages"
SPEC = DatasetSpec(name="pneumoniamnist", size=28)


def no_errors(at: AppTest) -> AppTest:
    assert not at.exception, [e.message for e in at.exception]
    return at


def page() -> AppTest:
    at = AppTest.from_file(str(PAGES / "quality.py"), default_timeout=120)
    at.session_state["dataset_spec"] = SPEC
    return at


def noisy_set(pneumonia, root: Path) -> Path:
    val = pneumonia.val.take(np.arange(60))
    noisy = np.clip(val.images + np.random.default_rng(0).normal(0, 6, val.images.shape), 0, 255).astype(np.uint8)
    gan = Run.create("gan", {}, root=root, name="fake")
    gan.write_status("done")
    return save_set(ImageSet(noisy, val.labels, pneumonia.class_names), gan.artifacts, "noisy", generator="dcgan",
                    dataset=SPEC.to_dict(), train_seconds=3.0)


def test_score_button_queues_a_job_for_the_chosen_set(runs_root, pneumonia, monkeypatch):
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])  # queue only: no worker in this test
    path = noisy_set(pneumonia, runs_root)
    at = no_errors(page().run())
    no_errors(next(b for b in at.button if b.label == "Score").click().run())
    [run] = list_runs("score")
    assert run.config["sets"] == [str(path)] and run.config["pairings"] == ["nearest"]
    assert run.config["dataset"]["name"] == "pneumoniamnist"
    assert run.config["prescreen"] is True  # 28 px: cheap enough to pre-screen by default, and the page says so
    assert any("trains 2 classifiers" in c.value and "On by default here" in c.value for c in at.caption)
    # Inception is on by default, with the documented samples, and the page says what it will cost
    assert (run.config["inception"], run.config["inception_real_images"],
            run.config["inception_synthetic_images"]) == (True, 2000, 1000)
    assert any("Inception will embed 2060 images" in c.value for c in at.caption)  # 2000 real (not cached) + 60
    atomic_write_json(cache_dir() / "inception" / "pace.json", {resolve_device("auto").type: 0.25})  # as timed here
    at.run()
    assert any("2060 images: about 8m 35s at this machine's 0.25 s per image" in c.value for c in at.caption)
    next(c for c in at.checkbox if c.label.startswith("Inception-v3 features")).uncheck().run()
    no_errors(next(b for b in at.button if b.label == "Score").click().run())
    assert not any("Inception will embed" in c.value for c in at.caption)
    assert sorted(r.config["inception"] for r in list_runs("score")) == [False, True]


def test_finished_scores_show_table_arrows_memorization_and_leaderboard(runs_root, pneumonia):
    path = noisy_set(pneumonia, runs_root)
    run = Run.create("score", {"sets": [str(path)], "pairings": ["nearest", "random"], "distribution": False})
    score_job(run)
    scores = Scores.load(run.artifacts / "scores.json")
    scores.cached = ["lab encoder", "Inception real reference"]  # as a second job on the same data says
    scores.save(run.artifacts / "scores.json")
    run.write_status("done")
    at = no_errors(page().run())
    assert "Cached for these real images, from an earlier score job: lab encoder, Inception real reference." in \
        [c.value for c in at.caption]
    frames = [df.value for df in at.dataframe]
    scores = next(f for f in frames if "pairing" in f.columns and "MS-GMSD ↓" in f.columns)
    assert set(scores["pairing"]) == {"nearest", "random"}
    assert any("Memorization" in h.value for h in at.subheader)
    assert any("suspected copies" in m.value for m in at.markdown)
    board = next(f for f in frames if "suspected copies ↓" in f.columns)
    assert list(board["generator"]) == ["dcgan"]


def test_a_finished_prescreen_shows_each_set_beside_the_real_only_classifier_and_the_majority_class(
        runs_root, pneumonia):
    path = noisy_set(pneumonia, runs_root)
    run = Run.create("score", {"sets": [str(path)], "distribution": False})
    score_job(run)
    odd = "odd: its classes (cat, dog) are not the dataset's (normal, pneumonia)"
    scores = {"accuracy": 0.8, "balanced_accuracy": 0.75, "macro_f1": 0.74, "auc_ovr": 0.85}
    Prescreen(TrainConfig(steps=200, batch_size=64, eval_every=50), len(pneumonia.test),
              Trivial.of(pneumonia.train.labels, pneumonia.test.labels, pneumonia.class_names),
              CasScores(REAL_ONLY, "", len(pneumonia.train), {**scores, "balanced_accuracy": 0.85}),
              [CasScores("noisy", set_id(path), 60, scores), CasScores("odd", "x/odd", 60, message=odd)],
              ["real-only classifier"]).save(run.artifacts / "prescreen.json")
    run.write_status("done")
    at = no_errors(page().run())
    assert any(h.value == "Pre-screen: train on synthetic, test on real" for h in at.subheader)
    assert any(c.value.startswith("Train on synthetic, test on real: how well a classifier learns the classes from "
                                  "the set alone; the real-only row is the same classifier") and
               "200 steps × 64 images" in c.value for c in at.caption)
    table = next(df.value for df in at.dataframe if "trained on" in df.value.columns)
    assert list(table["trained on"]) == ["noisy", "odd", REAL_ONLY, "always pneumonia"]
    assert list(table["Balanced accuracy"])[:1] + list(table["Balanced accuracy"])[2:] == [0.75, 0.85, 0.5]
    assert list(table["Accuracy"])[3] == pneumonia.test.class_counts()[1] / len(pneumonia.test)
    assert any("Not pre-screened: odd" in w.value for w in at.warning)
    assert "Cached for these real images, from an earlier score job: real-only classifier." in \
        [c.value for c in at.caption]
    board = next(df.value for df in at.dataframe if "CAS balanced acc ↑" in df.value.columns)
    assert list(board["CAS balanced acc ↑"]) == [0.75] and list(board["CAS real-only balanced acc"]) == [0.85]


def test_distribution_table_names_each_feature_space_with_the_encoder_accuracy_or_why_it_is_withheld(
        runs_root, pneumonia):
    run = Run.create("score", {"sets": [str(noisy_set(pneumonia, runs_root))], "distribution": False})
    score_job(run)
    run.write_status("done")
    scores = Scores.load(run.artifacts / "scores.json")
    encoder_name = "lab-cnn-128d (pneumoniamnist@28, val balanced acc 0.91)"

    def block(fid: float, space: str, reference: str, name: str) -> DistributionScores:
        return DistributionScores(fid, 0.01, 0.002, 0.8, 0.7, 0.9, 0.85, 30, 20, space, reference, name)

    scores.sets[0].distribution = [block(41.0, INCEPTION, TRAIN_SPLIT, FEATURE_SPACE),
                                   block(43.0, INCEPTION, CLASS_MATCHED, FEATURE_SPACE),
                                   block(0.7, ENCODER, TRAIN_SPLIT, encoder_name)]
    scores.inception = InceptionSummary(FEATURE_SPACE, PREPROCESSING, 30, len(pneumonia.train), 20, 0, "cpu")
    scores.encoder = EncoderSummary(encoder_name, 0.91, 0.5, 0.0005, "", {}, {})
    scores.save(run.artifacts / "scores.json")
    at = no_errors(page().run())
    table = next(df.value for df in at.dataframe if "feature space" in df.value.columns)
    assert list(table["feature space"]) == ["Inception", "Inception", "encoder"]
    assert list(table["encoder accuracy"]) == ["", "", "val balanced acc 0.91, chance 0.50"]
    assert any(f"30 of {len(pneumonia.train)} training images" in c.value and "PIL bicubic" in c.value
               for c in at.caption)
    assert any("0.0% [0.0%, 6.0%]" in m.value for m in at.markdown)  # 0/60 copies: an exact interval

    scores.sets[0].distribution = scores.sets[0].distribution[:2]
    scores.encoder = EncoderSummary(encoder_name, 0.52, 0.5, 0.3, "encoder at balanced accuracy 0.52, chance 0.50 "
                                    "(…): not clearly above chance, encoder-space metrics withheld", {}, {})
    scores.save(run.artifacts / "scores.json")
    at = no_errors(page().run())
    assert any("not clearly above chance, encoder-space metrics withheld" in w.value for w in at.warning)
    table = next(df.value for df in at.dataframe if "feature space" in df.value.columns)
    assert list(table["feature space"]) == ["Inception", "Inception"]


def test_an_uploaded_folder_zip_is_registered_as_a_set(runs_root, pneumonia):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for k, name in enumerate(pneumonia.class_names):
            for i in range(3):
                png = io.BytesIO()
                Image.fromarray(pneumonia.train.images[i + 10 * k][..., 0]).save(png, format="PNG")
                zf.writestr(f"{name}/{i}.png", png.getvalue())
    from data.uploads import register_upload

    path = register_upload(buffer.getvalue(), "mine.zip", SPEC, pneumonia.class_names, 1)
    [info] = list_sets(runs_root)
    assert info.path == path and info.meta["generator"] == "upload" and info.meta["count"] == 6
    try:
        register_upload(b"junk", "bad.zip", SPEC, pneumonia.class_names, 1)
    except ValueError as e:
        assert "bad.zip" in str(e)
    else:
        raise AssertionError("a junk zip was accepted")
