"""The "gan-stack" job (lab/kinds/gan_stack.py) and the batched study that uses it.

Member k of a stack writes what a "gan" run writes, named for it: its set, generator file and recorded
fingerprints say it learned from exactly its own subset, and the provenance check believes that only when
the stack run agrees (a member's set under another member's name, an extra set in the stack's folder, a
member the stack does not have and a forged record are each refused). A batched study with a per-class
GAN recipe trains its seeds' generators as one stack, and each seed's recipe arm draws its own member's set.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from data.files import read_json
from data.provenance import fingerprints
from gans.checkpoint import generator_provenance
from gans.config import make_config
from gans.stack import GanStackConfig
from lab.engine import jobs
from lab.engine.children import read_children
from lab.engine.runs import Run
from lab.kinds import gan_stack as gan_stack_job
from lab.kinds import sample as sample_job
from lab.kinds.study import describe_generator, group_describer
from lab.provenance_check import MISMATCH, verified_provenance
from lab.sampling import SampleConfig, finished_generators, sample_result
from lab.study.arm_runs import arm_runs_of

PNEUMONIA = {"source": "medmnist", "name": "pneumoniamnist", "size": 28}
TINY = {"latent": 8, "width": 8, "batch_size": 8, "steps": 3, "log_every": 1, "sample_every": 100,
        "checkpoint_every": 100, "export_per_class": 3, "device": "cpu"}
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, Path]:
    """A runs folder with one real gan-stack run of two DCGAN members (10% subsets of seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("stack") / "runs"
    members = [make_config("dcgan", **TINY, dataset=PNEUMONIA, train_fraction=0.1, seed=s) for s in SEEDS]
    run = Run.create("gan-stack", GanStackConfig(members=members).to_dict(), root=root)
    gan_stack_job.run(run)
    run.write_status("done")
    return root, run.path.relative_to(root)


@pytest.fixture
def stack(pristine, tmp_path) -> tuple[Path, Run]:
    """A fresh copy of the pristine runs folder to forge in, and its stack run."""
    original, place = pristine
    root = tmp_path / "runs"
    shutil.copytree(original, root)
    return root, Run(root / place)


def member_set(run: Run, k: int) -> Path:
    return run.artifacts / f"synthetic-m{k}.npz"


def copy_set(source: Path, target: Path) -> Path:
    for suffix in (".npz", ".json"):
        shutil.copy(source.with_suffix(suffix), target.with_suffix(suffix))
    return target


def test_each_member_records_exactly_its_own_subset_and_is_believed(stack, pneumonia):
    root, run = stack
    for k, seed in enumerate(SEEDS):
        own = fingerprints(pneumonia.train.stratified_subset(0.1, seed=seed).images)
        provenance, trained_on = verified_provenance(member_set(run, k), root)
        assert provenance.known, provenance.reason
        assert provenance.subset_seed == seed and provenance.run_id == run.id and provenance.train_fraction == 0.1
        assert np.array_equal(np.sort(trained_on), np.sort(own))
        recorded, prints = generator_provenance(run.checkpoints / f"generator-m{k}.pt")
        assert recorded == provenance and np.array_equal(np.sort(prints), np.sort(own))
        with np.load(member_set(run, k)) as f:
            assert f["images"].shape == (3 * 2, 28, 28, 1) and sorted(set(f["labels"].tolist())) == [0, 1]
    assert not (run.artifacts / "synthetic.npz").exists()


def another_members_set(run: Run) -> Path:
    return copy_set(member_set(run, 1), member_set(run, 0))


def a_member_it_does_not_have(run: Run) -> Path:
    return copy_set(member_set(run, 1), member_set(run, 5))


def an_extra_set_in_its_folder(run: Run) -> Path:
    return copy_set(member_set(run, 0), run.artifacts / "borrowed.npz")


def the_members_record_too(run: Run) -> Path:
    """Member 0's recorded fingerprints and its config both say what member 1's set says: the generator file
    is the witness left."""
    np.save(run.checkpoints / "trained_on-m0.npy", np.load(run.checkpoints / "trained_on-m1.npy"))
    config = json.loads((run.path / "config.json").read_text())
    config["members"][0]["seed"] = 1
    (run.path / "config.json").write_text(json.dumps(config))
    return another_members_set(run)


FORGERIES = [
    (another_members_set, "its subset_seed is 1, run"),
    (a_member_it_does_not_have, "has 2 members, no member 5"),
    (an_extra_set_in_its_folder, "borrowed.npz is not a member's set"),
    (the_members_record_too, "generator-m0.pt records that"),
]


@pytest.mark.parametrize("forge,differs", FORGERIES, ids=[f.__name__ for f, _ in FORGERIES])
def test_a_stack_members_set_that_disagrees_with_the_stack_is_not_believed(stack, forge, differs):
    root, run = stack
    provenance, trained_on = verified_provenance(forge(run), root)
    assert not provenance.known and trained_on is None
    assert differs in provenance.reason, provenance.reason
    if forge is not a_member_it_does_not_have and forge is not an_extra_set_in_its_folder:
        assert MISMATCH in provenance.reason


STUDY = {"dataset": PNEUMONIA, "train_fraction": 0.05, "seeds": list(SEEDS), "batched": "on",
         "arms": [{"name": "real only"},
                  {"name": "real + DCGAN", "kind": "recipe", "recipe": {"generator": "dcgan", "settings": {
                      k: v for k, v in TINY.items() if k != "export_per_class"}}}],
         "train": {"steps": 8, "batch_size": 16, "eval_every": 8}}


def test_a_batched_study_trains_its_seeds_generators_as_one_stack(runs_root):
    study = jobs.submit("study", STUDY, root=runs_root)
    assert jobs.wait(study, timeout=600) == "done", study.raw_status().get("error")
    children = read_children(study)
    stacks = [child for child in children.values() if child.kind == "gan-stack"]
    assert sorted(child.kind for child in children.values()) == ["gan-stack", "study-group"]
    members = stacks[0].settings["members"]
    assert [m["seed"] for m in members] == list(SEEDS)
    arms = arm_runs_of(study)
    for k, seed in enumerate(SEEDS):
        arm = arms[f"real + DCGAN|{seed}"]
        assert arm.config["recipe_set"] == f"{stacks[0].id}/synthetic-m{k}", arm.config
        provenance, _ = verified_provenance(member_set(stacks[0], k), runs_root)
        assert provenance.known and provenance.subset_seed == seed
        composition = read_json(arm.artifacts / "composition.json")
        assert composition["train"]["synthetic"] > 0


def test_the_studys_progress_names_a_stack_and_a_group_by_what_they_hold():
    assert describe_generator("dcgan-quick-a93c95|stack 0") == "generator dcgan-quick-a93c95 · stack 0"
    assert describe_generator("dcgan-quick-a93c95|3") == "generator dcgan-quick-a93c95 · seed 3"
    groups = {"group 0": ("arms-0", {"members": [{}] * 10}), "group 1": ("arms-1", {"members": [{}] * 4})}
    assert group_describer(groups)("group 1") == "group 2 of 2 (4 arm runs as one)"


def sample_member(root: Path, stack_run: Run, k: int, seed: int, per_class: int) -> Run:
    config = SampleConfig(generator=str(stack_run.checkpoints / f"generator-m{k}.pt"), origin=stack_run.id,
                          per_class=per_class, seed=seed, name="drawn")
    run = Run.create("sample", config.to_dict(), root=root)
    sample_job.run(run)
    run.write_status("done")
    return run


def test_a_members_generator_is_offered_and_a_set_drawn_from_it_keeps_its_members_provenance(stack, pneumonia):
    root, run = stack
    offered = finished_generators(root)
    assert [(g.run.id, g.path.name, g.member, g.seed) for g in offered] == \
        [(run.id, f"generator-m{k}.pt", k, seed) for k, seed in enumerate(SEEDS)]
    drawn = sample_member(root, run, 1, seed=9, per_class=2)
    provenance, trained_on = verified_provenance(sample_result(drawn).path, root)
    assert provenance.known and provenance.subset_seed == 1, provenance.reason
    own = fingerprints(pneumonia.train.stratified_subset(0.1, seed=1).images)
    assert np.array_equal(np.sort(trained_on), np.sort(own))
    # the member's own export is the draw (member, its seed, its size): asking for it again draws nothing
    again = sample_member(root, run, 1, seed=1, per_class=3)
    assert sample_result(again).identical_to == f"{run.id}/synthetic-m1"


def test_a_sample_run_that_names_another_members_generator_is_not_believed(stack):
    root, run = stack
    drawn = sample_member(root, run, 0, seed=9, per_class=2)
    config = json.loads((drawn.path / "config.json").read_text())
    config["generator"] = str(run.checkpoints / "generator-m1.pt")
    (drawn.path / "config.json").write_text(json.dumps(config))
    provenance, _ = verified_provenance(sample_result(drawn).path, root)
    assert not provenance.known and MISMATCH in provenance.reason and "its subset_seed is 0, run" in provenance.reason
