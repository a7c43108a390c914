"""The "singan" job: its strict config, one image with cancel and resume, seeds per class as a synthetic set,
the CLI."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from data.config import ConfigError
from data.hooks import Interrupted
from data.imageset import from_tensor
from data.synthetic import load_set
from gans.singan import SinGAN
from gans.singan_train import SinGanConfig, singan_config
from lab.cli import main
from lab.engine import jobs
from lab.engine.children import read_children
from lab.engine.runs import Run
from lab.kinds.singan import run as run_singan, seed_config
from lab.sets import list_sets
from tests.conftest import DATA_DIR

OCT = DATA_DIR / "oct2017_samples" / "DME-11053-1.jpeg"
TINY = {"max_side": 32, "min_side": 12, "stages": 3, "iters": 12, "width": 8, "sifid": False}


class StopAfter(Run):
    """A run whose user presses cancel after `n` progress reports (n=0: never); it counts the reports."""

    def __init__(self, path, n: int):
        super().__init__(path)
        self.n, self.reports = n, 0

    def progress(self, done, total, message="", force=False, **metrics):
        super().progress(done, total, message, force, **metrics)
        self.reports += 1
        if self.reports == self.n:
            self.stop_requested = True


def test_config_refuses_unknown_keys_and_bad_values_when_built():
    good = singan_config("quick", mode="image", image_path=str(OCT)).to_dict()
    assert SinGanConfig.from_dict(good).to_dict() == good
    with pytest.raises(ConfigError, match="'variatons'"):
        SinGanConfig.from_dict({**good, "variatons": 3})
    with pytest.raises(ConfigError, match="'iter'"):
        SinGanConfig.from_dict({**good, "model": {**good["model"], "iter": 3}})
    with pytest.raises(ConfigError, match="inject_stage"):
        singan_config("quick", mode="image", image_path=str(OCT), inject_stage=6)  # levels 0..5
    with pytest.raises(ConfigError, match="variations"):
        singan_config("quick", mode="image", image_path=str(OCT), variations=0)
    with pytest.raises(ConfigError, match="mode"):
        singan_config("quick", mode="video", image_path=str(OCT))
    with pytest.raises(ConfigError, match="image mode needs"):
        singan_config("quick", mode="image")
    with pytest.raises(ConfigError, match="seeds mode needs a dataset"):
        singan_config("quick", mode="seeds")
    with pytest.raises(ConfigError, match="seeds_per_class"):
        singan_config("tiny", mode="seeds", dataset={"name": "pneumoniamnist"}, seeds_per_class=0)
    with pytest.raises(ConfigError, match="stages"):
        singan_config("quick", mode="image", image_path=str(OCT), stages=0)
    with pytest.raises(ConfigError, match="unknown preset"):
        singan_config("fast", mode="image", image_path=str(OCT))


def test_the_tiny_preset_generates_from_noise_unless_told_otherwise():
    tiny = singan_config("tiny", mode="image", image_path=str(OCT))
    assert (tiny.inject_stage, tiny.model.min_side) == (0, 12)  # from a 12-px coarsest level: the layout varies
    assert singan_config("tiny", mode="image", image_path=str(OCT), inject_stage=2).inject_stage == 2
    assert singan_config("quick", mode="image", image_path=str(OCT)).inject_stage == 1


def test_image_job_cancels_with_a_checkpoint_and_resumes_where_it_stopped(runs_root):
    config = singan_config("quick", mode="image", image_path=str(OCT), variations=5, checkpoint_every=100,
                         log_every=5, **TINY)
    created = Run.create("singan", config.to_dict(), root=runs_root)
    stopped = StopAfter(created.path, 17)  # cancel pressed at the 17th report; the loop sees it after step 18
    with pytest.raises(Interrupted):
        run_singan(stopped)
    assert stopped.reports == 18 and (created.checkpoints / "last.pt").exists()
    # loss events every 5 iterations, at the end of a level (12) and on stop
    assert [e["done"] for e in created.events("progress")] == [5, 10, 12, 15, 18]

    resumed = StopAfter(created.path, 0)
    run_singan(resumed)
    resume = created.events("resume")
    assert [(e["stage"], e["iteration"]) for e in resume] == [(1, 6)]  # step 18 = level 2, iteration 6
    assert resumed.reports == 36 - 18  # no step repeated, none skipped
    done = [e["done"] for e in created.events("progress")]
    assert done == [5, 10, 12, 15, 18, 20, 24, 25, 30, 35, 36]
    assert created.raw_status()["progress"]["done"] == 36
    progress = created.events("progress")[-1]
    assert {"stage", "iteration", "critic", "gp", "adversarial", "rec_rmse"} <= set(progress)
    assert sorted(p.name for p in created.samples.glob("stage_*.png")) == ["stage_0.png", "stage_1.png", "stage_2.png"]
    assert [e["stage"] for e in created.events("stage")] == [0, 1, 2]

    with np.load(created.artifacts / "variations.npz") as f:
        variations = f["images"]
    assert variations.shape == (5, 31, 32, 1) and variations.dtype == np.uint8  # 512 wide × 496 tall
    model = SinGAN.load(created.checkpoints / "singan.pt")
    assert model.sizes[-1] == (31, 32) and model.channels == 1
    summary = json.loads((created.artifacts / "summary.json").read_text())
    real = from_tensor(model.reals[-1])[0]
    assert summary["diversity"]["to_image"] == pytest.approx(np.abs(variations.astype(float) - real).mean(), abs=1e-3)
    assert summary["diversity"]["between"] > 0 and summary["diversity"]["real_pairs"] is None  # a file: no class
    assert "sifid" not in summary  # turned off


SEEDS_TINY = {**TINY, "max_side": 28}


def seeds_config(**fields):
    fields = {"seeds_per_class": 2, "variations": 3, **SEEDS_TINY, **fields}
    return singan_config("tiny", mode="seeds", dataset={"name": "pneumoniamnist", "size": 28}, **fields)


def test_seeds_per_class_registers_a_labelled_set_at_the_dataset_size(runs_root, pneumonia):
    run = Run.create("singan", seeds_config().to_dict(), root=runs_root)
    run_singan(run)
    synthetic = load_set(run.artifacts / "singan_variations.npz")
    assert synthetic.images.shape == (12, 28, 28, 1)
    assert synthetic.labels.tolist() == [0] * 6 + [1] * 6
    assert synthetic.class_names == pneumonia.class_names
    indices = json.loads((run.artifacts / "seeds.json").read_text())["indices"]
    seeds = pneumonia.train.images[indices]
    assert all(np.abs(v.astype(int) - s.astype(int)).mean() > 1 for v, s in zip(synthetic.images[::3], seeds))
    assert (run.artifacts / "singan_variations.zip").stat().st_size > 0
    assert [s.path for s in list_sets(runs_root)] == [run.artifacts / "singan_variations.npz"]
    assert (run.samples / "seeds.png").exists()
    summary = json.loads((run.artifacts / "summary.json").read_text())
    assert len(summary["diversity_per_seed"]) == 4 and summary["diversity"]["real_pairs"] > 20

    # one queued image-mode run per seed, each with its own events, generator and variations
    children = list(read_children(run).values())
    assert [c.config["image_index"] for c in children] == indices
    assert {c.config["mode"] for c in children} == {"image"} and {c.state for c in children} == {"done"}
    assert all((c.checkpoints / "singan.pt").exists() and c.events("progress") for c in children)
    assert [c.config["seed"] for c in children] == [0, 1, 2, 3]
    assert seed_config(seeds_config(sifid=True), 5, 0)["sifid"] is False  # the seeds run reports over all seeds
    assert {c.config["parent"] for c in children} == {str(run.path)}
    assert run.raw_status()["progress"]["done"] == run.raw_status()["progress"]["total"]


def test_seed_runs_use_free_worker_slots(runs_root, monkeypatch):
    monkeypatch.setenv("LAB_MAX_JOBS", "2")
    monkeypatch.setenv("LAB_CHILD_WORKERS", "1")  # the parent runs what the queue does not start
    parent = jobs.submit("singan", seeds_config(seeds_per_class=1).to_dict(), name="two-slots")
    assert jobs.wait(parent, timeout=240) == "done", parent.log_path.read_text()
    children = list(read_children(parent).values())
    assert {c.state for c in children} == {"done"}
    # the first seed went to a worker of its own; the parent trained the other one itself
    pids = [c.raw_status()["pid"] for c in children]
    assert pids[0] != parent.raw_status()["pid"] and pids[1] == parent.raw_status()["pid"]
    assert len(load_set(parent.artifacts / "singan_variations.npz")) == 6


def test_cancelling_a_seeds_run_cancels_its_seed_runs_and_resume_finishes_them(runs_root):
    parent = jobs.submit("singan", seeds_config(variations=2).to_dict(), name="cancel-me")
    deadline = time.time() + 120
    while time.time() < deadline and not any(c.events("progress") for c in read_children(parent).values()):
        time.sleep(0.2)
    assert jobs.cancel(parent) in ("running", "cancelled")
    assert jobs.wait(parent, timeout=60) == "cancelled"
    children = list(read_children(parent).values())
    assert len(children) == 4 and {c.state for c in children} <= {"done", "cancelled"}
    assert "cancelled" in {c.state for c in children}

    jobs.resume(parent)
    assert jobs.wait(parent, timeout=240) == "done", parent.log_path.read_text()
    assert {c.state for c in children} == {"done"}
    assert len(load_set(parent.artifacts / "singan_variations.npz")) == 8


def test_cli_refuses_an_undecodable_image_before_queuing(runs_root, tmp_path, capsys):
    bad = tmp_path / "upload.png"
    bad.write_bytes(b"\x89PNG but not really")
    assert main(["singan", "--image", str(bad)]) == 1
    assert "upload.png" in capsys.readouterr().err
    assert not (runs_root / "singan").exists()


def test_cli_trains_an_image_through_a_worker_process(runs_root):
    code = main(["singan", "--image", str(OCT), "--max-side", "24", "--min-side", "12", "--stages", "2",
                 "--iters", "5", "--width", "8", "--variations", "2", "--no-sifid"])
    assert code == 0
    (run,) = [Run(p) for p in (runs_root / "singan").iterdir()]
    assert run.state == "done"
    assert run.config["model"]["iters"] == 5 and run.config["mode"] == "image"
    assert (run.artifacts / "variations.png").exists()
    assert jobs.job_kind("singan").run is run_singan
