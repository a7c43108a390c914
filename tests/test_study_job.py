"""The augmentation study is fair by construction, checked on the data the arm jobs actually saw;
its page and CLI show and launch it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from classifier.train import TrainConfig
from data.augment import apply, build_pipeline, default_pipeline
from data.config import ConfigError
from data.files import read_json
from data.imageset import ImageSet
from data.provenance import fingerprints
from data.synthetic import save_set
from lab.engine.children import read_children
from lab.engine.runs import Run
from lab.kinds.study import run as run_study
from lab.kinds.study_arm import run as run_arm
from lab.study.arm import standard_augment
from lab.study.config import ArmConfig, StudyConfig
from lab.study.report import bars_figure
from lab.study.summary import StudySummary, read_summary
from pages.common import plain

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
    run_study(run)
    return run, synthetic_path


def seen(child: Run) -> dict:
    with np.load(child.artifacts / "data_seen.npz") as f:
        return {k: f[k] for k in f.files}


def test_no_synthetic_image_reaches_validation_or_test(study, pneumonia):
    run, synthetic_path = study
    with np.load(synthetic_path) as f:
        synthetic = set(fingerprints(f["images"]).tolist())
    used_synthetic = 0
    for key, child in read_children(run).items():
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
    results = [read_json(c.artifacts / "result.json") for c in read_children(run).values()]
    assert len(results) == 2 * len(SEEDS)
    assert {r["steps"] for r in results} == {STEPS}
    assert {r["images_seen"] for r in results} == {STEPS * 16}
    summary = read_json(run.artifacts / "summary.json")
    assert all(arm["steps"] == [STEPS] for arm in summary["arms"])


def test_each_seed_uses_the_same_real_subset_in_every_arm(study):
    run, _ = study
    subsets = {}
    for key, child in read_children(run).items():
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
    child = next(c for k, c in read_children(run).items() if k == "real + noisy|1")
    first = read_json(child.artifacts / "result.json")
    again = Run.create("study-arm", child.config, root=run.path.parent.parent)
    threads = torch.get_num_threads()
    torch.set_num_threads(first["threads"])  # float sums differ with the thread count: compare like with like
    try:
        run_arm(again)
    finally:
        torch.set_num_threads(threads)
    second = read_json(again.artifacts / "result.json")
    assert second["threads"] == first["threads"]
    assert first["test"] == second["test"]
    assert first["history"] == second["history"]


def test_study_page_shows_verdicts_charts_downloads_and_gradcam(study, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from data.datasets import DatasetSpec

    run, synthetic_path = study
    monkeypatch.setenv("LAB_RUNS_DIR", str(run.path.parent.parent))
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.session_state["dataset_spec"] = DatasetSpec(name="pneumoniamnist")
    at.session_state["study_run"] = run.id
    at.run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert plain("real + noisy") in text and "points balanced accuracy" in text
    bars = bars_figure(read_summary(run))  # the page draws this figure (and the HTML report the same one)
    assert [t.get_text() for t in bars.axes[0].get_legend().get_texts()] == ["real only", "real + noisy"]
    assert len(at.get("download_button")) == 3
    assert len(at.image) >= 2  # eight test images and their Grad-CAM overlays (pyplot figures count too)
    assert at.multiselect(key="study_recipes").value == ["dcgan"], "the quick study defaults to a DCGAN recipe arm"
    assert any("With 3 seeds, a difference between two arms will carry a 95% interval of about ±" in c.value
               for c in at.caption)
    assert not at.warning
    at.number_input(key="study_seeds").set_value(2).run()
    assert any("below 3 seeds" in w.value for w in at.warning)
    at.toggle(key="study_fixed").set_value(True).run()
    offered = at.multiselect(key="study_sets")
    assert any("noisy" in str(o) for o in offered.options), "the synthetic set is offered as an (advanced) arm"
    offered.set_value([f"{synthetic_path.parent.parent.name}/noisy"]).run()
    assert not at.exception, at.exception
    assert any("unknown" in w.value and plain("real + ") in w.value for w in at.warning), \
        "a set of unknown provenance is flagged before launch"


def test_a_study_shows_its_own_data_in_a_tab_on_another_dataset(study, monkeypatch):
    """A new tab starts on DermaMNIST (RGB); the study ran on PneumoniaMNIST (grayscale): Grad-CAM of its
    models takes the study's test images."""
    from streamlit.testing.v1 import AppTest

    run, _ = study
    monkeypatch.setenv("LAB_RUNS_DIR", str(run.path.parent.parent))
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.session_state["study_run"] = run.id
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["dataset_spec"].name == "dermamnist"
    assert len(at.image) >= 2  # the study's test images and their Grad-CAM overlays


def test_cli_resolves_a_preset_with_reference_and_synthetic_arms(tmp_path, capsys, derma):
    from lab.cli import main

    a_set = save_set(noisy_flipped_copies(derma.train, 20), tmp_path, "a")
    assert main(["study", "--preset", "quick", "--synthetic", str(a_set), "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert [(a["kind"], a["balance"]) for a in config["arms"]] == [
        ("real", "none"), ("real", "sampler"), ("standard_aug", "none"), ("standard_aug", "sampler"),
        ("synthetic", "none")]
    assert config["train"]["steps"] == 400 and config["seeds"] == [0, 1, 2] and config["train_fraction"] == 0.1
    path = tmp_path / "study.json"
    path.write_text(json.dumps({"preset": "paper", "seeds": [5, 6, 7], "train": {"steps": 99}}))
    assert main(["study", str(path), "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["seeds"] == [5, 6, 7] and config["train"]["steps"] == 99 and config["train"]["batch_size"] == 128
    assert [a["kind"] for a in config["arms"]] == ["real", "real", "standard_aug", "standard_aug"]


def test_summary_reads_back_as_the_same_json(study):
    run, _ = study
    on_disk = json.loads((run.artifacts / "summary.json").read_text())
    summary = read_summary(run)
    assert isinstance(summary, StudySummary)
    assert json.dumps(summary.to_dict()) == json.dumps(on_disk)  # as text: a NaN p-value equals itself
    base, synthetic = summary.arms
    assert summary.baseline == base.arm == "real only" and not base.vs_baseline
    assert synthetic.vs_baseline["balanced_accuracy"].delta.n == len(SEEDS)
    assert [(arm.arm, gain) for arm, gain in summary.gains()] == [
        ("real + noisy", synthetic.vs_baseline["balanced_accuracy"])]


def test_a_malformed_summary_is_an_error_naming_the_file(runs_root):
    run = Run.create("study", {}, root=runs_root)
    assert read_summary(run) is None
    (run.artifacts / "summary.json").write_text(json.dumps({"arms": []}))
    with pytest.raises(ValueError, match="summary.json"):
        read_summary(run)


def test_study_configs_refuse_unknown_keys_and_contradictions(tmp_path):
    with pytest.raises(ConfigError, match=r"'train_fracton'.*known: dataset, train_fraction, seeds, arms"):
        StudyConfig.from_dict({"train_fracton": 0.2})
    with pytest.raises(ConfigError, match="StudyConfig.arms.*'mixx'"):
        StudyConfig.from_dict({"arms": [{"name": "a", "mixx": "ratio"}]})
    with pytest.raises(ConfigError, match="StudyConfig.train.*'stpes'"):
        StudyConfig.from_dict({"train": {"stpes": 3}})
    for bad, words in (({"name": "a", "kind": "gan"}, "kind"), ({"name": "a", "kind": "synthetic"}, "synthetic_set"),
                       ({"name": "a", "synthetic_set": "x.npz"}, "takes no synthetic_set"),
                       ({"name": "a", "kind": "standard_aug", "augment": ["twirl"]}, "twirl"),
                       ({"name": "a", "ratio": 0}, "ratio")):
        with pytest.raises(ConfigError, match=words):
            ArmConfig.from_dict(bad)
    for bad, words in (({"seeds": [1, 1]}, "seeds"), ({"seeds": []}, "seeds"),
                       ({"train_fraction": 0}, "train_fraction"), ({"arms": [{"name": "a"}, {"name": "a"}]}, "unique"),
                       ({"primary_metric": "loss"}, "primary")):
        with pytest.raises(ConfigError, match=words):
            StudyConfig.from_dict(bad)
    relative = ArmConfig("s", "synthetic", "sets/a.npz")
    assert relative.synthetic_set == str(Path("sets/a.npz").resolve())


def test_the_standard_augmentation_arm_uses_the_datasets_default_pipeline(pneumonia):
    images = pneumonia.train.images[:32]
    arm = ArmConfig("aug", "standard_aug")
    for flag in ("pneumoniamnist", "dermamnist"):
        expected = apply(build_pipeline(default_pipeline(flag)), images, seed=5)
        assert np.array_equal(standard_augment(arm, flag)(images, 5), expected), flag
    chosen = ArmConfig("aug", "standard_aug", augment=["vflip"], augment_p=1.0)
    assert np.array_equal(standard_augment(chosen, "dermamnist")(images, 0), images[:, ::-1])
    assert standard_augment(ArmConfig("real only"), "dermamnist") is None


def test_cli_refuses_a_study_file_with_an_unknown_key_naming_it(tmp_path, capsys):
    from lab.cli import main

    path = tmp_path / "study.json"
    path.write_text(json.dumps({"preset": "quick", "train_fracton": 0.2}))
    assert main(["study", str(path), "--print-config"]) == 1
    error = capsys.readouterr().err
    assert "study.json" in error and "'train_fracton'" in error and "train_fraction" in error
