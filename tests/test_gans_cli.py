"""`python -m lab train-gan` and `python -m lab sample` on real tiny runs."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from gans.config import make_config
from lab.cli import main
from lab.engine import jobs
from lab.engine.runs import Run, list_runs
from lab.kinds.gan import run as run_gan_job
from lab.sets import list_sets


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


def test_train_gan_takes_the_small_data_options(runs_root, monkeypatch, capsys):
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])
    assert main(["train-gan", "--gan", "wgan_gp", "--set", "diffaugment=translation,cutout", "--set", "ema=0.99",
                 "--detach"]) == 0
    [run] = list_runs("gan")
    assert (run.config["diffaugment"], run.config["ema"]) == ("translation,cutout", 0.99)
    assert main(["train-gan", "--set", "diffaugment=flip", "--detach"]) == 1
    assert "unknown DiffAugment transform(s) 'flip'" in capsys.readouterr().err


@pytest.mark.parametrize("setting,message", [
    ('per_class="no"', "GanConfig.per_class must be true or false; got 'no'"),
    ('steps="abc"', "GanConfig.steps must be a whole number; got 'abc'"),
    ("steps=abc", "GanConfig.steps must be a whole number; got 'abc'"),
    ("lr_g=2", "GanConfig.lr_g must be at most 0.1; got 2"),
    ("learning_rate=1e-4", "--set learning_rate=1e-4: expected KEY=VALUE with KEY one of gan, preset"),
])
def test_a_wrong_or_unknown_setting_is_refused_with_a_message_and_nothing_is_queued(runs_root, monkeypatch, capsys,
                                                                                    setting, message):
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])
    assert main(["train-gan", "--set", setting, "--detach"]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert list_runs("gan") == []


def test_train_gan_help_lists_every_setting_with_its_type_and_range(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train-gan", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "label_smoothing (float, 0.0..0.5)" in out and "export_per_class (int, 0..20000)" in out
    assert "gan (str, one of dcgan, wgan_gp, acgan, sngan)" in out
    assert "diffaugment (str): Differentiable augmentation" in out and "ema (float, 0.0..0.9999)" in out


def test_sample_writes_a_zip_and_an_npz_and_registers_the_set(runs_root, tmp_path, pneumonia):
    run = Run.create("gan", make_config("acgan", latent=8, width=8, steps=4, log_every=2, export_per_class=1,
                                        dataset={"name": "pneumoniamnist"}).to_dict(), root=runs_root)
    run_gan_job(run)
    assert main(["sample", run.id, "--per-class", "3", "--out", str(tmp_path / "s.zip")]) == 0
    names = zipfile.ZipFile(tmp_path / "s.zip").namelist()
    assert sorted({n.split("/")[0] for n in names}) == ["normal", "pneumonia"] and len(names) == 6
    assert main(["sample", str(run.checkpoints / "generator.pt"), "--per-class", "2",
                 "--out", str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as f:
        assert f["images"].shape == (4, 28, 28, 1) and f["labels"].tolist() == [0, 0, 1, 1]
    assert any(s.path.stem == "samples_3pc_seed0" for s in list_sets(runs_root))
