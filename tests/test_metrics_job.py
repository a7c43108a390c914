"""The score job end to end: sets in, scores.json / scores.csv / galleries out; CLI and leaderboard."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from data.datasets import DatasetSpec
from data.imageset import ImageSet
from data.synthetic import load_set, save_set
from lab.cli import main as cli_main
from lab.runs import Run, atomic_write_json
from metrics.job import resolve_sets, run_job
from metrics.leaderboard import leaderboard_rows

SPEC = DatasetSpec(name="pneumoniamnist", size=28).to_dict()
TINY_ENCODER = {"width": 8, "feature_dim": 16, "epochs": 1, "batch_size": 128}


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
                                   "encoder": TINY_ENCODER})
        run_job(run)
        run.write_status("done")
        yield root, run, sets


@pytest.fixture
def scored(scored_root, monkeypatch):
    root, run, sets = scored_root
    monkeypatch.setenv("LAB_RUNS_DIR", str(root))
    monkeypatch.setenv("LAB_CACHE_DIR", str(root / "cache"))
    return run, sets


def test_score_job_ranks_copies_noise_and_noisy_images_sensibly(scored):
    run, sets = scored
    scores = json.loads((run.artifacts / "scores.json").read_text())
    by_name = {s["generator"]: s for s in scores["sets"]}
    assert "lab-cnn-16d" in scores["encoder"]["name"]
    good, noise, copier = by_name["good"], by_name["noise"], by_name["copier"]
    for key in ("psnr", "ssim", "haarpsi"):
        g, n = good["pairings"]["nearest"]["metrics"][key], noise["pairings"]["nearest"]["metrics"][key]
        assert g["lo"] > n["hi"], key  # intervals separate
        assert g["n"] == 150 and set(g["per_class"]) == {"normal", "pneumonia"}
    for key in ("ms_gmsd", "mdsi"):
        assert good["pairings"]["nearest"]["metrics"][key]["hi"] < noise["pairings"]["nearest"]["metrics"][key]["lo"]
    assert copier["pairings"]["nearest"]["metrics"]["ssim"]["mean"] > 0.999
    assert good["distribution"]["fid"] < noise["distribution"]["fid"]
    assert good["distribution_class_matched"]["fid"] < noise["distribution_class_matched"]["fid"]
    assert noise["distribution"]["precision"] < good["distribution"]["precision"]
    assert copier["memorization"]["suspected_fraction"]["mean"] == 1.0
    assert good["memorization"]["suspected_fraction"]["mean"] < 0.2
    assert copier["memorization"]["closest"][0]["distance"] < 1e-3
    # nearest pairing flatters every set compared with random pairing, as it should
    assert good["pairings"]["nearest"]["metrics"]["psnr"]["mean"] > good["pairings"]["random"]["metrics"]["psnr"]["mean"]
    assert (run.artifacts / good["gallery"]).exists()


def test_scores_csv_has_a_row_per_set_pairing_metric_and_class(scored):
    run, sets = scored
    rows = list(csv.DictReader((run.artifacts / "scores.csv").open()))
    classes_present = [len(np.unique(load_set(p).labels)) for p in sets.values()]
    ssim_rows = [r for r in rows if r["metric"] == "SSIM"]
    assert len(ssim_rows) == sum(2 * (1 + k) for k in classes_present)  # pairings × (all + each class)
    assert {r["direction"] for r in rows if r["metric"] == "MS-GMSD"} == {"↓"}
    assert any(r["metric"] == "FID" for r in rows) and any(r["metric"] == "suspected copies" for r in rows)


def test_a_resumed_job_reuses_finished_sets(scored):
    run, _ = scored
    checkpoint = run.checkpoints / "set_0.json"
    marked = {**json.loads(checkpoint.read_text()), "name": "from-checkpoint"}
    atomic_write_json(checkpoint, marked)
    run_job(run)
    names = [s["name"] for s in json.loads((run.artifacts / "scores.json").read_text())["sets"]]
    assert names[0] == "from-checkpoint"


def test_leaderboard_has_one_row_per_set_and_joins_the_study_gain(scored, scored_root):
    run, sets = scored
    runs_root = scored_root[0]
    study = Run.create("study", {})
    atomic_write_json(study.artifacts / "summary.json", {
        "primary_metric": "balanced_accuracy",
        "arms": [{"arm": "real", "kind": "real", "synthetic_set": None, "metrics": {}},
                 {"arm": "good", "kind": "synthetic", "synthetic_set": sets["good"], "metrics": {},
                  "vs_baseline": {"balanced_accuracy": {"mean": 0.021, "lo": 0.004, "hi": 0.038, "n": 3,
                                                        "p_value": 0.03, "significant": True}},
                  "verdict": "+2.1 points"}]})
    study.write_status("done")
    rows = {r["generator"]: r for r in leaderboard_rows(runs_root)}
    assert set(rows) == {"good", "noise", "copier"}
    assert rows["good"]["downstream gain (points)"] == pytest.approx(2.1)
    assert rows["noise"]["downstream gain (points)"] is None
    assert rows["copier"]["suspected copies ↓"] == 1.0 and rows["good"]["train time (s)"] == 12.5


def test_cli_scores_a_run_id_and_writes_the_tables_to_out(runs_root, pneumonia, tmp_path, capsys):
    sets = make_sets(pneumonia, runs_root)
    gan_run = Path(sets["good"]).parent.parent.name
    assert resolve_sets([gan_run]) == sorted(resolve_sets(list(sets.values())))
    out = tmp_path / "out"
    code = cli_main(["score", sets["good"], sets["noise"], "--pairing", "both", "--no-distribution",
                     "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "SSIM↑" in printed and "MS-GMSD↓" in printed and "suspected copies" in printed
    scores = json.loads((out / "scores.json").read_text())
    assert [s["generator"] for s in scores["sets"]] == ["good", "noise"]
    assert (out / "scores.csv").exists()


def test_cli_refuses_a_missing_set(runs_root, capsys):
    assert cli_main(["score", "/nowhere/set.npz"]) == 1
    assert "no synthetic set" in capsys.readouterr().err


def test_a_cancelled_job_stops_after_the_current_set_and_keeps_it(runs_root, pneumonia):
    from lab.runs import Cancelled

    sets = make_sets(pneumonia, runs_root)
    run = Run.create("score", {"sets": [sets["good"], sets["noise"]], "distribution": False})
    run.stop_requested = True  # as after SIGTERM
    with pytest.raises(Cancelled):
        run_job(run)
    assert (run.checkpoints / "set_0.json").exists() and not (run.checkpoints / "set_1.json").exists()
    assert not (run.artifacts / "scores.json").exists()
    run.stop_requested = False
    run_job(run)  # resumed: finishes the second set
    assert len(json.loads((run.artifacts / "scores.json").read_text())["sets"]) == 2
