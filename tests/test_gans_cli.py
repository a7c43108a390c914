"""`python -m lab train-gan` and `python -m lab sample` on real tiny runs."""
from __future__ import annotations

import zipfile

import numpy as np

from data.synthetic import list_sets
from gans.config import make_config
from gans.train import run_job
from lab import jobs
from lab.cli import main
from lab.runs import Run, list_runs


def test_train_gan_queues_a_job_with_the_preset_and_the_overrides(runs_root, monkeypatch, capsys):
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])  # queue only
    code = main(["train-gan", "--gan", "sngan", "--dataset", "pneumoniamnist", "--set", "steps=77",
                 "--set", "lr_d=0.0004", "--detach"])
    assert code == 0
    [run] = list_runs("gan")
    config = run.config
    assert (config["gan"], config["steps"], config["lr_d"], config["lr_g"]) == ("sngan", 77, 0.0004, 0.0002)
    assert config["dataset"]["name"] == "pneumoniamnist" and config["per_class"] is True
    assert main(["train-gan", "--set", "bogus=1", "--detach"]) == 1
    assert "bogus=1" in capsys.readouterr().err


def test_sample_writes_a_zip_and_an_npz_and_registers_the_set(runs_root, tmp_path, pneumonia):
    run = Run.create("gan", make_config("acgan", latent=8, width=8, steps=4, log_every=2, export_per_class=1,
                                        dataset={"name": "pneumoniamnist"}).to_dict(), root=runs_root)
    run_job(run)
    assert main(["sample", run.id, "--per-class", "3", "--out", str(tmp_path / "s.zip")]) == 0
    names = zipfile.ZipFile(tmp_path / "s.zip").namelist()
    assert sorted({n.split("/")[0] for n in names}) == ["normal", "pneumonia"] and len(names) == 6
    assert main(["sample", str(run.checkpoints / "generator.pt"), "--per-class", "2",
                 "--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as f:
        assert f["images"].shape == (4, 28, 28, 1) and f["labels"].tolist() == [0, 0, 1, 1]
    assert any(s.path.stem == "samples_3pc_seed0" for s in list_sets(runs_root))
