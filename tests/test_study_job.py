"""The augmentation study is fair by construction, checked on the data the arm jobs actually saw;
its page and CLI show and launch it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data.imageset import ImageSet
from data.synthetic import save_set
from lab.runs import Run, read_json
from lab.study import ArmConfig, StudyConfig, fingerprints, run_arm_job, run_study_job, study_children
from classifier.train import TrainConfig

PAGE = Path(__file__).resolve().parent.parent / "pages" / "study.py"
SEEDS = [0, 1, 2]
STEPS = 6


def noisy_flipped_copies(real: ImageSet, n: int, seed: int = 0) -> ImageSet:
    """A stand-in synthetic set: mirrored real images with pixel noise (new pixels, real labels)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(real), size=n, replace=False)
    noise = rng.integers(-12, 13, size=real.images[pick].shape)
    images = np.clip(real.images[pick][:, :, ::-1].astype(int) + noise, 0, 255).astype(np.uint8)
    return ImageSet(images, real.labels[pick], real.class_names, "synthetic", "noisy-flips")


@pytest.fixture(scope="module")
def study(tmp_path_factory, pneumonia):
    """A tiny finished study on PneumoniaMNIST (small val/test splits keep it fast): real only vs
    real + a synthetic set, 3 seeds, 6 steps per arm."""
    root = tmp_path_factory.mktemp("runs")
    source = Run.create("gan", {"note": "holds the synthetic set"}, root=root)
    synthetic_path = save_set(noisy_flipped_copies(pneumonia.train, 600), source.artifacts, "noisy",
                              generator="noisy-flips")
    config = StudyConfig(dataset={"name": "pneumoniamnist", "size": 28}, train_fraction=0.03, seeds=SEEDS,
                         arms=[ArmConfig("real only"), ArmConfig("real + noisy", "synthetic", str(synthetic_path))],
                         train=TrainConfig(steps=STEPS, batch_size=16, eval_every=STEPS))
    run = Run.create("study", config.to_dict(), root=root)
    run_study_job(run)
    return run, synthetic_path


def seen(child: Run) -> dict:
    with np.load(child.artifacts / "data_seen.npz") as f:
        return {k: f[k] for k in f.files}


def test_no_synthetic_image_reaches_validation_or_test(study, pneumonia):
    run, synthetic_path = study
    with np.load(synthetic_path) as f:
        synthetic = set(fingerprints(f["images"]).tolist())
    used_synthetic = 0
    for key, child in study_children(run).items():
        data = seen(child)
        assert not synthetic & set(data["val"].tolist()), key
        assert not synthetic & set(data["test"].tolist()), key
        assert len(data["val"]) == len(pneumonia.val) and len(data["test"]) == len(pneumonia.test)
        drawn_synthetic = synthetic & set(data["train"].tolist())
        if key.startswith("real only"):
            assert not drawn_synthetic, f"{key} trained on synthetic images"
        else:
            used_synthetic += len(drawn_synthetic)
            assert data["train_synthetic"].sum() == len(drawn_synthetic)
    assert used_synthetic > 0, "the synthetic arm never drew a synthetic image"


def test_every_arm_takes_the_same_number_of_optimizer_steps(study):
    run, _ = study
    results = [read_json(c.artifacts / "result.json") for c in study_children(run).values()]
    assert len(results) == 2 * len(SEEDS)
    assert {r["steps"] for r in results} == {STEPS}
    assert {r["images_seen"] for r in results} == {STEPS * 16}
    summary = read_json(run.artifacts / "summary.json")
    assert all(arm["steps"] == [STEPS] for arm in summary["arms"])


def test_each_seed_uses_the_same_real_subset_in_every_arm(study):
    run, _ = study
    subsets = {}
    for key, child in study_children(run).items():
        arm, seed = key.rsplit("|", 1)
        subsets.setdefault(seed, {})[arm] = read_json(child.artifacts / "composition.json")["train"]["real_subset"]
    for seed, by_arm in subsets.items():
        assert len(set(by_arm.values())) == 1, f"seed {seed}: arms trained on different real subsets"
    assert len({next(iter(v.values())) for v in subsets.values()}) == len(SEEDS), "seeds share a subset"


def test_summary_follows_the_leaderboard_contract(study):
    run, synthetic_path = study
    summary = json.loads((run.artifacts / "summary.json").read_text())
    assert summary["primary_metric"] == "balanced_accuracy" and summary["seeds"] == SEEDS
    assert summary["dataset"]["name"] == "pneumoniamnist" and summary["train_fraction"] == 0.03
    base, synthetic = summary["arms"]
    assert base["kind"] == "real" and base["synthetic_set"] is None and "vs_baseline" not in base
    assert synthetic["kind"] == "synthetic" and synthetic["synthetic_set"] == str(synthetic_path.resolve())
    for arm in summary["arms"]:
        for est in arm["metrics"].values():
            assert est["n"] == 3 and est["lo"] <= est["mean"] <= est["hi"]
    delta = synthetic["vs_baseline"]["balanced_accuracy"]
    assert {"mean", "lo", "hi", "n", "p_value", "significant"} <= set(delta)
    assert ("interval" in synthetic["verdict"]) and "points balanced accuracy" in synthetic["verdict"]
    html = (run.artifacts / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "real + noisy" in html
    assert (run.artifacts / "report.csv").read_text().count("\n") == 1 + 2 * 4


def test_same_config_and_seed_give_the_same_numbers_twice(study):
    run, _ = study
    child = next(c for k, c in study_children(run).items() if k == "real + noisy|1")
    again = Run.create("study-arm", child.config, root=run.path.parent.parent)
    run_arm_job(again)
    first, second = (read_json(r.artifacts / "result.json") for r in (child, again))
    assert first["test"] == second["test"]
    assert first["history"] == second["history"]


def test_study_page_shows_verdicts_charts_downloads_and_gradcam(study, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from data.datasets import DatasetSpec

    run, _ = study
    monkeypatch.setenv("LAB_RUNS_DIR", str(run.path.parent.parent))
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.session_state["dataset_spec"] = DatasetSpec(name="pneumoniamnist")
    at.session_state["study_run"] = run.id
    at.run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "real + noisy" in text and "points balanced accuracy" in text
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert [b["name"] for b in bars] == ["real only", "real + noisy"]
    assert len(at.get("download_button")) == 3
    assert len(at.image) >= 2  # eight test images and their Grad-CAM overlays (pyplot figures count too)
    assert any("noisy" in str(o) for o in at.multiselect[0].options), "the synthetic set is offered as an arm"


def test_cli_resolves_a_preset_with_synthetic_arms(tmp_path, capsys):
    from lab.cli import main

    assert main(["study", "--preset", "quick", "--synthetic", str(tmp_path / "a.npz"), "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert [a["kind"] for a in config["arms"]] == ["real", "synthetic"]
    assert config["train"]["steps"] == 400 and config["seeds"] == [0, 1, 2] and config["train_fraction"] == 0.1
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"preset": "paper", "seeds": [5, 6, 7], "train": {"steps": 99}}))
    assert main(["study", str(path), "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["seeds"] == [5, 6, 7] and config["train"]["steps"] == 99 and config["train"]["batch_size"] == 128
    assert [a["kind"] for a in config["arms"]] == ["real", "standard_aug"]
