"""The "singan" job: one image with cancel and resume, seeds per class as a synthetic set, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from data.synthetic import list_sets, load_set
from gans.singan import SinGAN
from gans.singan_job import make_config, run_job
from lab import jobs
from lab.cli import main
from lab.runs import Cancelled, Run
from tests.conftest import DATA_DIR

OCT = DATA_DIR / "oct2017_samples" / "DME-11053-1.jpeg"
TINY = {"max_side": 32, "min_side": 12, "stages": 3, "iters": 12, "width": 8}


class StopAfter(Run):
    """A run whose user presses cancel after `n` progress reports."""

    def __init__(self, path, n: int):
        super().__init__(path)
        self.n, self.reports = n, 0

    def progress(self, done, total, message="", force=False, **metrics):
        super().progress(done, total, message, force, **metrics)
        self.reports += 1
        if self.reports == self.n:
            self.stop_requested = True


def test_image_job_cancels_with_a_checkpoint_and_resumes_where_it_stopped(runs_root):
    config = make_config("quick", mode="image", image_path=str(OCT), variations=5, checkpoint_every=100, **TINY)
    created = Run.create("singan", config.to_dict(), root=runs_root)
    with pytest.raises(Cancelled):
        run_job(StopAfter(created.path, 17))  # level 2, iteration 5
    assert (created.checkpoints / "last.pt").exists()
    assert [e["done"] for e in created.events("progress")] == list(range(1, 18))

    run_job(Run(created.path))
    resume = created.events("resume")
    assert [(e["stage"], e["iteration"]) for e in resume] == [(1, 5)]
    done = [e["done"] for e in created.events("progress")]
    assert done == list(range(1, 18)) + list(range(18, 37))  # no step repeated, none skipped
    progress = created.events("progress")[-1]
    assert {"stage", "iteration", "critic", "adversarial", "rec_rmse"} <= set(progress)
    assert sorted(p.name for p in created.samples.glob("stage_*.png")) == ["stage_0.png", "stage_1.png", "stage_2.png"]
    assert [e["stage"] for e in created.events("stage")] == [0, 1, 2]

    with np.load(created.artifacts / "variations.npz") as f:
        variations = f["images"]
    assert variations.shape == (5, 31, 32, 1) and variations.dtype == np.uint8  # 512 wide × 496 tall
    model = SinGAN.load(created.checkpoints / "singan.pt")
    assert model.sizes[-1] == (31, 32) and model.channels == 1


def test_seeds_per_class_registers_a_labelled_set_at_the_dataset_size(runs_root, pneumonia):
    config = make_config("tiny", mode="seeds", dataset={"name": "pneumoniamnist", "size": 28}, seeds_per_class=2,
                         variations=3, **{**TINY, "max_side": 28})
    run = Run.create("singan", config.to_dict(), root=runs_root)
    run_job(run)
    synthetic = load_set(run.artifacts / "singan_variations.npz")
    assert synthetic.images.shape == (12, 28, 28, 1)
    assert synthetic.labels.tolist() == [0] * 6 + [1] * 6
    assert synthetic.class_names == pneumonia.class_names
    seeds = pneumonia.train.images[json.loads((run.artifacts / "seeds.json").read_text())["indices"]]
    assert all(np.abs(v.astype(int) - s.astype(int)).mean() > 1 for v, s in zip(synthetic.images[::3], seeds))
    assert (run.artifacts / "singan_variations.zip").stat().st_size > 0
    assert [s.path for s in list_sets(runs_root)] == [run.artifacts / "singan_variations.npz"]
    assert (run.samples / "seeds.png").exists()


def test_cli_refuses_an_undecodable_image_before_queuing(runs_root, tmp_path, capsys):
    bad = tmp_path / "upload.png"
    bad.write_bytes(b"\x89PNG but not really")
    assert main(["singan", "--image", str(bad)]) == 1
    assert "upload.png" in capsys.readouterr().err
    assert not (runs_root / "singan").exists()


def test_cli_trains_an_image_through_a_worker_process(runs_root):
    code = main(["singan", "--image", str(OCT), "--max-side", "24", "--min-side", "12", "--stages", "2",
                 "--iters", "5", "--width", "8", "--variations", "2"])
    assert code == 0
    (run,) = [Run(p) for p in (runs_root / "singan").iterdir()]
    assert run.state == "done"
    assert run.config["model"]["iters"] == 5 and run.config["mode"] == "image"
    assert (run.artifacts / "variations.png").exists()
    assert jobs.job_function("singan") is run_job
