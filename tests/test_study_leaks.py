"""A fixed synthetic set cannot smuggle real images into a study: a set whose generator saw training
images outside a seed's subset is refused unless the arm accepts the leak (and then every result
says so), a set whose generator saw validation or test images is refused always, and a set of
another dataset is refused; the CLI refuses before anything is queued, with the message."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from classifier.train import TrainConfig
from data.datasets import load_dataset
from data.imageset import ImageSet
from data.provenance import fingerprints
from data.synthetic import save_set, set_id
from gans.config import make_config
from lab.engine.runs import Run, list_runs
from lab.kinds import gan
from lab.kinds.study import run as run_study
from lab.study.config import ArmConfig, SetRefused, StudyConfig
from lab.study.leaks import check_sets, dataset_of_sets
from lab.study.summary import read_summary

PNEUMONIA = {"name": "pneumoniamnist", "size": 28}


@pytest.fixture(scope="module")
def whole_split_set(tmp_path_factory):
    """The synthetic set of a (barely trained) DCGAN that learned from the whole PneumoniaMNIST training split."""
    root = tmp_path_factory.mktemp("runs")
    config = make_config("dcgan", "quick", dataset=PNEUMONIA, train_fraction=1.0, steps=2, export_per_class=40,
                         sample_every=1000, checkpoint_every=1000)
    run = Run.create("gan", config.to_dict(), root=root)
    gan.run(run)
    return root, run.artifacts / "synthetic.npz"


def outside(train: ImageSet, subset: ImageSet) -> int:
    return int((~np.isin(fingerprints(train.images), fingerprints(subset.images))).sum())


def study(path, allow_leak: bool = False, dataset: dict = PNEUMONIA) -> StudyConfig:
    return StudyConfig(dataset=dataset, train_fraction=0.1, seeds=[0],
                       arms=[ArmConfig("real only"), ArmConfig("real + leaky", "synthetic", str(path),
                                                               allow_leak=allow_leak)],
                       train=TrainConfig(steps=4, batch_size=8, eval_every=4))


def test_a_set_trained_on_the_whole_split_is_refused_at_ten_percent(whole_split_set, pneumonia):
    root, path = whole_split_set
    expected = outside(pneumonia.train, pneumonia.train.stratified_subset(0.1, 0))
    with pytest.raises(SetRefused) as refused:
        check_sets(study(path), pneumonia, root)
    message = str(refused.value)
    assert f"synthetic set {set_id(path)}" in message and "arm 'real + leaky'" in message
    assert f"learned from {len(pneumonia.train)} real training images, {expected} of them outside" in message
    assert "allow_leak" in message


def test_with_allow_leak_it_runs_and_every_result_says_so(whole_split_set, pneumonia):
    root, path = whole_split_set
    subset = len(pneumonia.train.stratified_subset(0.1, 0))
    flag = f"generator trained on {len(pneumonia.train)} real images, classifier on {subset}"
    assert check_sets(study(path, allow_leak=True), pneumonia, root)["real + leaky"].startswith(flag)
    run = Run.create("study", study(path, allow_leak=True).to_dict(), root=root)
    run_study(run)
    summary = read_summary(run)
    leaky, base = summary.arm("real + leaky"), summary.arm("real only")
    assert leaky.leak.startswith(flag) and not base.leak
    assert leaky.verdict.startswith(f"[{flag}")
    rows = (run.artifacts / "report.csv").read_text().splitlines()
    assert all(flag in row for row in rows if row.startswith("real + leaky"))
    assert not any(flag in row for row in rows if row.startswith("real only"))
    per_seed = (run.artifacts / "results.csv").read_text().splitlines()
    assert sum(flag in row for row in per_seed) == 1
    assert flag in (run.artifacts / "report.html").read_text()


def test_a_set_whose_generator_saw_validation_images_is_refused_even_with_allow_leak(runs_root, pneumonia):
    """A real GAN run learns from an image folder's training split carved with split seed 0; a study on the same
    folder carved with split seed 1 holds some of those images in its validation and test splits."""
    folder = runs_root.parent / "xray"
    for label, class_name in enumerate(pneumonia.class_names):
        (folder / class_name).mkdir(parents=True)
        for i, image in enumerate(pneumonia.train.images[pneumonia.train.labels == label][:30]):
            Image.fromarray(image[..., 0]).save(folder / class_name / f"{i}.png")
    dataset = {"source": "folder", "name": "xray", "size": 28, "path": str(folder)}
    config = make_config("dcgan", "quick", dataset=dataset, train_fraction=1.0, steps=2, export_per_class=5,
                         sample_every=1000, checkpoint_every=1000)
    run = Run.create("gan", config.to_dict(), root=runs_root)
    gan.run(run)
    resplit = {**dataset, "split_seed": 1}
    with pytest.raises(SetRefused, match=r"learned from \d+ validation and \d+ test images; a study never uses such"):
        check_sets(study(run.artifacts / "synthetic.npz", allow_leak=True, dataset=resplit), load_dataset(resplit),
                   runs_root)


def test_a_set_of_another_dataset_is_refused(whole_split_set, derma):
    root, path = whole_split_set
    assert dataset_of_sets([str(path)], root).name == "pneumoniamnist"
    with pytest.raises(SetRefused, match=r"was made from pneumoniamnist \(28px\); this study is on dermamnist"):
        check_sets(study(path, allow_leak=True, dataset={"name": "dermamnist"}), derma, root)


def test_an_unknown_provenance_is_allowed_and_flagged(tmp_path, pneumonia):
    images = ImageSet(pneumonia.train.images[:20], pneumonia.train.labels[:20], pneumonia.class_names)
    path = save_set(images, tmp_path, "uploaded")
    flags = check_sets(study(path), pneumonia)
    assert flags["real + leaky"].startswith("generator's real images unknown")


def test_the_cli_takes_the_dataset_from_the_set_and_refuses_the_leak_before_queuing(whole_split_set, pneumonia,
                                                                                    monkeypatch, capsys):
    import json

    from lab.cli import main

    root, path = whole_split_set
    monkeypatch.setenv("LAB_RUNS_DIR", str(root))
    ref = set_id(path)
    assert main(["study", "--preset", "quick", "--synthetic", ref, "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"]["name"] == "pneumoniamnist"
    studies = len(list_runs("study", root=root))
    assert main(["study", "--preset", "quick", "--synthetic", ref]) == 1
    error = capsys.readouterr().err
    expected = outside(pneumonia.train, pneumonia.train.stratified_subset(0.1, 0))
    assert f"synthetic set {ref}" in error and f"{expected} of them outside" in error
    assert main(["study", "--preset", "quick", "--dataset", "dermamnist", "--synthetic", ref]) == 1
    assert "was made from pneumoniamnist" in capsys.readouterr().err
    assert len(list_runs("study", root=root)) == studies, "a refused study was queued"
