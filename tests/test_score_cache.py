"""A score job's one progress bar and its per-dataset cache: the lab encoder, Inception's real reference and the
real-only pre-screen classifier are computed by the first job on a dataset and taken by every later one, with the
same numbers, and never by a job on other real images."""
from __future__ import annotations

import numpy as np

from classifier.prescreen import CAS_BUDGET, Prescreen, expected_costs, prescreen_sets, real_cache_path
from data.datasets import Dataset
from lab.engine import jobs
from lab.engine.runs import Run
from metrics.encoder import EncoderConfig, cache_path, fingerprint, train_encoder
from metrics.scores import Scores
from tests.test_metrics_job import TINY_ENCODER, make_sets

# Inception costs about 0.2-0.5 s per image on a CPU, an EfficientNet step about 0.3 s: a few of each
SMALL = {"inception_real_images": 12, "inception_synthetic_images": 8, "prescreen": True, "prescreen_steps": 4}


def score_run(sets: dict[str, str]) -> Run:
    run = jobs.submit("score", {"sets": [sets["good"]], "encoder": TINY_ENCODER, **SMALL})
    assert jobs.wait(run, timeout=600) == "done", run.log_path.read_text()
    return run


def numbers(run: Run) -> tuple:
    scores, prescreen = Scores.load(run.artifacts / "scores.json"), Prescreen.load(run.artifacts / "prescreen.json")
    return [s.to_dict() | {"seconds": None, "path": None} for s in scores.sets], prescreen.real.scores


def test_a_second_score_job_on_the_same_data_takes_the_real_data_work_from_the_cache_with_the_same_numbers(
        runs_root, pneumonia):
    sets = make_sets(pneumonia, runs_root)
    first = score_run(sets)
    assert Scores.load(first.artifacts / "scores.json").cached == []
    assert Prescreen.load(first.artifacts / "prescreen.json").cached == []

    # one bar: every stage and progress event on the same scale, never going back, ending full
    marks = [e for e in first.events() if e.get("type") in ("stage", "progress")]
    assert {e["total"] for e in marks} == {1000} and len(marks) >= 6
    assert [e["done"] for e in marks] == sorted(e["done"] for e in marks)
    assert first.raw_status()["progress"]["done"] == first.raw_status()["progress"]["total"] == 1000
    stages = [e["stage"] for e in first.events("stage")]
    assert stages[:2] == ["lab encoder", "real reference"] and stages[-1].startswith("pre-screen 2/2 good")

    second = score_run(sets)
    assert Scores.load(second.artifacts / "scores.json").cached == ["lab encoder", "Inception real reference"]
    assert Prescreen.load(second.artifacts / "prescreen.json").cached == ["real-only classifier"]
    assert {e["part"] for e in second.events("cached")} == {"lab encoder", "Inception real reference"}
    assert numbers(second) == numbers(first)
    assert second.raw_status()["progress"]["done"] == 1000


def test_the_real_only_classifier_is_cached_per_exact_real_images_never_across_subsets(runs_root, pneumonia, capsys):
    subset = Dataset(pneumonia.spec, {**pneumonia.splits, "train": pneumonia.train.take(np.arange(0, 600))})
    other = Dataset(pneumonia.spec, {**pneumonia.splits, "train": pneumonia.train.take(np.arange(1, 601))})
    paths = {real_cache_path(data, CAS_BUDGET) for data in (pneumonia, subset, other)}
    assert len(paths) == 3  # the whole split, and two subsets of the same size, each its own
    assert real_cache_path(subset, CAS_BUDGET.replace(steps=5)) != real_cache_path(subset, CAS_BUDGET)

    budget = CAS_BUDGET.replace(steps=2, eval_every=2)
    assert expected_costs(subset, [], budget)["pre-screen 1/1 real only"] > 0
    path = real_cache_path(subset, budget)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")  # a damaged cache file is measured again, and the log says so
    measured = prescreen_sets(subset, [], budget)
    assert measured.cached == [] and measured.real.scores and "measuring the real-only classifier again" in \
        capsys.readouterr().err
    assert expected_costs(subset, [], budget)["pre-screen 1/1 real only"] == 0
    assert expected_costs(other, [], budget)["pre-screen 1/1 real only"] > 0
    assert prescreen_sets(subset, [], budget).cached == ["real-only classifier"]


def test_a_damaged_encoder_in_the_cache_is_trained_again_and_replaced_with_a_log_line(runs_root, pneumonia, capsys):
    train = pneumonia.train.take(np.arange(0, 4000, 10))
    config = EncoderConfig(**TINY_ENCODER)
    path = cache_path(train.source, fingerprint(train, config))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    trained = train_encoder(train, pneumonia.val, config)
    assert not trained.cached and f"cache: {path} cannot be used" in capsys.readouterr().err
    again = train_encoder(train, pneumonia.val, config)
    assert again.cached and again.info == trained.info
