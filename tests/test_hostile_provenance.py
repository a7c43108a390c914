"""Provenance cannot be forged by editing one file (issue 21).

A set's sidecar and npz are claims anyone can edit. The study believes them only when they agree
with the run that wrote the set: its config.json, the fingerprints it recorded in its checkpoints/
as it trained (`checkpoints/trained_on.npy`) and its generator.pt. The forgeries start from the
issue's attack (a copy of a generator run that learned from the whole PneumoniaMNIST training
split, its set edited to claim it learned from nothing) and edit ever more files, always leaving
one witness honest: each is flagged "provenance does not match the run that wrote it" (unknown
provenance, refused for a recipe). A set outside its run folder is unknown. Genuine sets of real
GAN, sample and GPNN runs stay known and run in a study with no flag.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from classifier.train import TrainConfig
from data.provenance import digest, fingerprints
from data.subset import SeedSubset
from gans.config import make_config
from gans.gpnn import gpnn_config
from gans.single_image import choose_seeds
from lab.engine.runs import Run
from lab.kinds import gan as gan_job
from lab.kinds import gpnn as gpnn_job
from lab.kinds import sample as sample_job
from lab.kinds.study import run as run_study
from lab.sampling import SampleConfig, sample_result
from lab.study.config import ArmConfig, StudyConfig
from lab.study.leaks import check_sets
from lab.study.recipes import check_recipe_set
from lab.study.summary import read_summary

PNEUMONIA = {"source": "medmnist", "name": "pneumoniamnist", "size": 28}
TINY = dict(latent=8, width=8, batch_size=8, steps=2, log_every=1, sample_every=100, checkpoint_every=100,
            export_per_class=3, device="cpu", dataset=PNEUMONIA)
MISMATCH = "provenance does not match the run that wrote it"
RECORDED = Path("checkpoints") / "trained_on.npy"  # the fingerprints a generator run records as it trains
NOTHING = np.zeros(0, dtype=np.uint64)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A runs folder with real runs: DCGANs that learned from the whole training split ("whole") and from the
    study's 10% subset of seed 0 ("tenth"), and a sample run drawn from each ("drawn", "drawn_whole"); and the
    place of each run in it."""
    root = tmp_path_factory.mktemp("pristine") / "runs"
    whole, tenth = train_gan(root, 1.0), train_gan(root, 0.1)
    runs = {"whole": whole, "tenth": tenth, "drawn": sample(root, tenth), "drawn_whole": sample(root, whole)}
    return root, {name: run.path.relative_to(root) for name, run in runs.items()}


@pytest.fixture
def lab(pristine, tmp_path) -> tuple[Path, dict[str, Run]]:
    """A fresh copy of the pristine runs folder to forge in, and its runs by name."""
    original, places = pristine
    root = tmp_path / "runs"
    shutil.copytree(original, root, symlinks=True)
    return root, {name: Run(root / place) for name, place in places.items()}


def train_gan(root: Path, fraction: float) -> Run:
    run = Run.create("gan", make_config("dcgan", **{**TINY, "train_fraction": fraction, "seed": 0}).to_dict(),
                     root=root)
    gan_job.run(run)
    run.write_status("done")
    return run


def sample(root: Path, gan_run: Run) -> Run:
    config = SampleConfig(generator=str(gan_run.checkpoints / "generator.pt"), origin=gan_run.id, per_class=2,
                          seed=9, name="drawn")
    run = Run.create("sample", config.to_dict(), root=root)
    sample_job.run(run)
    run.write_status("done")
    return run


def set_of(run: Run) -> Path:
    return sample_result(run).path if run.kind == "sample" else run.artifacts / "synthetic.npz"


def study(path: Path, allow_leak: bool = True) -> StudyConfig:
    return StudyConfig(dataset=PNEUMONIA, train_fraction=0.1, seeds=[0],
                       arms=[ArmConfig("real only"), ArmConfig("real + set", "synthetic", str(path),
                                                               allow_leak=allow_leak)],
                       train=TrainConfig(steps=2, batch_size=8, eval_every=2))


def subset_prints(pneumonia) -> np.ndarray:
    return fingerprints(pneumonia.train.stratified_subset(0.1, seed=0).images)


# --- forging one file at a time, as a user with a text editor and numpy would ---------------------

def edit_sidecar(set_path: Path, **fields) -> None:
    sidecar = set_path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["provenance"].update(fields)
    sidecar.write_text(json.dumps(meta))


def edit_npz(set_path: Path, trained_on: np.ndarray) -> None:
    with np.load(set_path) as f:
        arrays = {key: f[key] for key in f.files}
    np.savez(set_path, **{**arrays, "trained_on": trained_on})


def claim(set_path: Path, trained_on: np.ndarray, **fields) -> None:
    """Make the set claim it learned from `trained_on`: its npz and its sidecar agree with each other."""
    edit_npz(set_path, trained_on)
    edit_sidecar(set_path, real_images=len(trained_on), digest=digest(trained_on), **fields)


def claim_nothing(run: Run) -> Path:
    """The issue's attack: real_images 0, train_fraction 0.1, the digest of no fingerprints, trained_on empty."""
    claim(set_of(run), NOTHING, train_fraction=0.1)
    return set_of(run)


def edit_config(run: Run, **fields) -> None:
    config = json.loads((run.path / "config.json").read_text())
    (run.path / "config.json").write_text(json.dumps({**config, **fields}))


def edit_recorded(run: Run, trained_on: np.ndarray) -> None:
    np.save(run.path / RECORDED, trained_on)


def edit_generator(run: Run, trained_on: np.ndarray, **fields) -> None:
    path = run.checkpoints / "generator.pt"
    blob = torch.load(path, weights_only=True)
    blob["provenance"].update(real_images=len(trained_on), digest=digest(trained_on), **fields)
    blob["trained_on"] = torch.from_numpy(trained_on.view(np.int64).copy())
    torch.save(blob, path)


def the_issues_attack(runs, pneumonia) -> Path:
    return claim_nothing(runs["whole"])


def a_sidecar_field(runs, pneumonia) -> Path:
    edit_sidecar(set_of(runs["whole"]), subset_seed=5)
    return set_of(runs["whole"])


def the_npz_fingerprints(runs, pneumonia) -> Path:
    claim(set_of(runs["whole"]), subset_prints(pneumonia))  # the sidecar's count and digest follow them
    return set_of(runs["whole"])


def the_run_config_too(runs, pneumonia) -> Path:
    edit_config(runs["whole"], train_fraction=0.1)
    return claim_nothing(runs["whole"])


def the_runs_fingerprint_file_too(runs, pneumonia) -> Path:
    edit_config(runs["whole"], train_fraction=0.1)
    edit_recorded(runs["whole"], NOTHING)
    return claim_nothing(runs["whole"])


def the_generator_record_too(runs, pneumonia) -> Path:
    edit_config(runs["whole"], train_fraction=0.1)
    edit_generator(runs["whole"], NOTHING, train_fraction=0.1)
    return claim_nothing(runs["whole"])


def a_sample_runs_origin(runs, pneumonia) -> Path:
    """A set drawn from the whole-split generator, its sample run and set edited to name the 10% GAN run."""
    drawn, tenth = runs["drawn_whole"], runs["tenth"]
    edit_config(drawn, origin=tenth.id)
    with np.load(set_of(tenth)) as f:
        edit_npz(set_of(drawn), f["trained_on"])
    edit_sidecar(set_of(drawn), **json.loads(set_of(tenth).with_suffix(".json").read_text())["provenance"])
    return set_of(drawn)


def a_copy_into_another_run(runs, pneumonia) -> Path:
    return copy_set(set_of(runs["whole"]), runs["tenth"].artifacts, "borrowed")


def a_copy_into_an_upload_folder(runs, pneumonia) -> Path:
    return copy_set(set_of(runs["whole"]), runs["tenth"].path.parent.parent / "uploads" / "up1" / "artifacts", "up")


def copy_set(set_path: Path, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".npz", ".json"):
        shutil.copy(set_path.with_suffix(suffix), (folder / name).with_suffix(suffix))
    return folder / f"{name}.npz"


FORGERIES = [
    (the_issues_attack, "its train_fraction is 0.1, run"),
    (a_sidecar_field, "its subset_seed is 5, run"),
    (the_npz_fingerprints, "recorded as it trained"),
    (the_run_config_too, "recorded as it trained"),
    (the_runs_fingerprint_file_too, "generator.pt records that dcgan run"),
    (the_generator_record_too, "recorded as it trained"),
    (a_sample_runs_origin, "not from the generator of its origin"),
    (a_copy_into_another_run, "names run"),
    (a_copy_into_an_upload_folder, "kind 'uploads', which trains no generator"),
]


@pytest.mark.parametrize("forge,differs", FORGERIES, ids=[f.__name__ for f, _ in FORGERIES])
def test_a_forged_provenance_is_flagged_as_not_matching_the_run_that_wrote_it(lab, pneumonia, forge, differs):
    root, runs = lab
    path = forge(runs, pneumonia)
    flag = check_sets(study(path), pneumonia, root).get("real + set", "")
    assert flag.startswith(f"generator's real images unknown ({MISMATCH}: "), flag
    assert differs in flag, flag


def test_the_issues_attack_is_flagged_without_allow_leak_and_a_recipe_refuses_such_a_set(lab, pneumonia):
    root, runs = lab
    path = claim_nothing(runs["whole"])
    assert MISMATCH in check_sets(study(path, allow_leak=False), pneumonia, root)["real + set"]

    forged = set_of(runs["drawn_whole"])  # claims exactly the 10% subset of seed 0, as a recipe's generator would
    claim(forged, subset_prints(pneumonia), train_fraction=0.1)
    with pytest.raises(RuntimeError, match=MISMATCH):
        check_recipe_set(forged, pneumonia.train.stratified_subset(0.1, seed=0), pneumonia, exact=True)


@pytest.mark.parametrize("where", ["elsewhere", "linked"])
def test_a_set_copied_out_of_its_run_folder_is_unknown(lab, pneumonia, tmp_path, where):
    root, runs = lab
    path = copy_set(set_of(runs["whole"]), tmp_path / "downloads", "whole")
    if where == "linked":  # a link inside a run's artifacts is followed out of the runs folder
        for suffix in (".npz", ".json"):
            (runs["tenth"].artifacts / f"linked{suffix}").symlink_to(path.with_suffix(suffix))
        path = runs["tenth"].artifacts / "linked.npz"
    flag = check_sets(study(path), pneumonia, root).get("real + set", "")
    assert flag.startswith("generator's real images unknown (") and "copied out of its run folder" in flag, flag


def test_genuine_gan_sample_and_gpnn_sets_stay_known_and_run_in_a_study_with_no_flag(lab, pneumonia):
    root, runs = lab
    subset = SeedSubset.draw(pneumonia.train, 0.1, seed=0)
    seeds = subset.at(choose_seeds(subset.of(pneumonia.train), 1, 0))
    gpnn = Run.create("gpnn", gpnn_config("quick", mode="seeds", dataset=PNEUMONIA, seed_indices=seeds, variations=2,
                                          iters=2, fine_levels=1, fine_iters=1, sifid=False).to_dict(), root=root)
    gpnn_job.run(gpnn)
    assert (runs["tenth"].path / RECORDED).is_file() and (gpnn.path / RECORDED).is_file()
    sets = {"gan": set_of(runs["tenth"]), "sample": set_of(runs["drawn"]),
            "gpnn": gpnn.artifacts / "gpnn_variations.npz"}
    for name, path in sets.items():
        assert check_sets(study(path, allow_leak=False), pneumonia, root) == {}, name
    whole = check_sets(study(set_of(runs["whole"])), pneumonia, root)["real + set"]
    assert whole.startswith(f"generator trained on {len(pneumonia.train)} real images"), whole  # known, leaky

    config = study(sets["gan"], allow_leak=False).replace(arms=[
        ArmConfig("real only"), ArmConfig("real + gan", "synthetic", str(sets["gan"])),
        ArmConfig("real + sample", "synthetic", str(sets["sample"]))])
    run = Run.create("study", config.to_dict(), root=root)
    run_study(run)
    assert [(arm.arm, arm.leak) for arm in read_summary(run).arms] == [
        ("real only", ""), ("real + gan", ""), ("real + sample", "")]
