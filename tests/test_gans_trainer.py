"""The GAN trainer and the "gan" and "sample" jobs: events, sample grids, checkpoints, cancel/resume,
divergence, exports."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from data.config import ConfigError
from data.hooks import Hooks, Interrupted
from data.synthetic import load_set
from gans import train as trainer
from gans.checkpoint import CheckpointError, load_generator
from gans.config import make_config
from lab.engine import jobs
from lab.engine.runs import Run
from lab.kinds import gan as gan_job
from lab.sampling import SampleConfig
from lab.sets import list_sets

TINY = dict(latent=16, width=8, batch_size=16, steps=12, log_every=4, sample_every=6, checkpoint_every=6,
            export_per_class=5, device="cpu", dataset={"source": "medmnist", "name": "pneumoniamnist", "size": 28})


def make_run(runs_root, config) -> Run:
    return Run.create("gan", config.to_dict(), root=runs_root)


def test_a_finished_run_holds_events_grids_generator_and_a_labelled_synthetic_set(runs_root, pneumonia):
    run = make_run(runs_root, make_config("sngan", **TINY))
    gan_job.run(run)
    progress = run.events("progress")
    assert [e["done"] for e in progress] == [4, 8, 12]
    assert all(np.isfinite(e["loss_d"]) and np.isfinite(e["loss_g"]) and e["seconds"] > 0 for e in progress)
    assert {p.name for p in run.samples.iterdir()} == {"step_000006.png", "step_000012.png", "latest.png"}
    assert (run.checkpoints / "last.pt").exists() and (run.checkpoints / "generator.pt").exists()
    [info] = list_sets(runs_root)
    synthetic = load_set(info.path)
    assert synthetic.class_names == pneumonia.class_names
    assert synthetic.class_counts().tolist() == [5, 5]
    assert synthetic.images.shape[1:] == (28, 28, 1)
    assert info.meta["generator"] == "sngan" and info.meta["run_id"] == run.id


def test_cancel_then_resume_gives_the_same_generator_as_an_uninterrupted_run(runs_root):
    config = make_config("dcgan", **TINY)
    straight = make_run(runs_root, config)
    gan_job.run(straight)

    interrupted = make_run(runs_root, config)
    interrupted.stop_requested = True  # as the worker's SIGTERM handler sets it
    with pytest.raises(Interrupted):
        gan_job.run(interrupted)
    state = torch.load(interrupted.checkpoints / "last.pt", weights_only=True)
    assert state["step"] == 1
    resumed = Run(interrupted.path)
    gan_job.run(resumed)
    assert resumed.events("resume")[0]["step"] == 1

    a, _, _ = load_generator(straight.checkpoints / "generator.pt")
    b, _, _ = load_generator(resumed.checkpoints / "generator.pt")
    for (name, x), y in zip(a.sampling_generator.state_dict().items(), b.sampling_generator.state_dict().values()):
        assert torch.equal(x, y), f"{name} differs after resume"


def test_nan_losses_stop_training_with_a_clear_error(runs_root, monkeypatch):
    from gans.dcgan import DCGAN

    real_step = DCGAN.train_step

    def diverging_step(self, real, labels):
        losses = real_step(self, real, labels)
        return {**losses, "loss_d": losses["loss_d"] * float("nan")}

    monkeypatch.setattr(DCGAN, "train_step", diverging_step)
    run = make_run(runs_root, make_config("dcgan", **TINY))
    with pytest.raises(trainer.Diverged, match="diverged near step 4: loss_d became NaN"):
        gan_job.run(run)
    assert not (run.checkpoints / "generator.pt").exists()


def test_gan_job_runs_in_a_worker_process_and_finishes(runs_root):
    run = jobs.submit("gan", make_config("acgan", **TINY).to_dict())
    assert jobs.wait(run, timeout=120) == "done", run.log_path.read_text()
    assert run.status()["progress"]["done"] == 12
    assert (run.samples / "latest.png").exists()


def test_epochs_set_the_number_of_steps_from_the_training_images():
    config = make_config("wgan_gp", epochs=2, batch_size=10)
    assert config.d_steps == 5
    assert config.total_steps(num_images=1000, num_models=2) == 20


def test_unknown_options_and_gans_are_refused():
    with pytest.raises(ConfigError, match="unknown setting.*'learning_rate'"):
        make_config("dcgan", learning_rate=1)
    with pytest.raises(ValueError, match="unknown GAN 'stylegan'"):
        make_config("stylegan")
    with pytest.raises(ValueError, match="image size 48"):
        from gans.config import build_gan
        build_gan(replace(make_config("dcgan")), 48, 3, 2)


def test_class_balanced_batches_draw_every_class_equally_often_with_matching_labels(derma):
    """ACGAN's real batches: DermaMNIST is two-thirds nevi, yet each class fills about 1/7 of a batch."""
    batches = trainer.RealBatches(derma.train, per_class=False, device=torch.device("cpu"), balanced=True)
    torch.manual_seed(0)
    images, labels = batches.draw(7000)
    shares = np.bincount(labels.numpy(), minlength=7) / len(labels)
    assert np.all(np.abs(shares - 1 / 7) < 0.02), shares
    real = derma.train.to_tensor()
    for k in range(7):  # every drawn image really is an image of its label's class
        drawn = images[labels == k][:20].flatten(1)
        of_class = real[torch.from_numpy(derma.train.labels == k)].flatten(1)
        assert (torch.cdist(drawn, of_class, compute_mode="donot_use_mm_for_euclid_dist").min(1).values < 1e-4).all(), derma.class_names[k]


def test_the_trainer_alone_reports_checkpoints_stops_and_resumes_through_plain_hooks(tmp_path, pneumonia):
    """No run directory, no lab: a folder for checkpoints and two callbacks are all the trainer needs."""
    config = make_config("dcgan", **TINY)
    reported = []
    progress = lambda done, total, message="", **metrics: reported.append((done, total, sorted(metrics)))  # noqa: E731
    with pytest.raises(Interrupted):
        trainer.train(config, pneumonia.train, Hooks(progress=progress, should_stop=lambda: True, checkpoints=tmp_path))
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 1 and reported == []

    gan = trainer.train(config, pneumonia.train, Hooks(progress=progress, checkpoints=tmp_path))
    assert gan.steps_done == 12 and gan.train_seconds > 0
    assert [(done, total) for done, total, _ in reported] == [(4, 12), (8, 12), (12, 12)]
    assert all(names == ["loss_d", "loss_g", "seconds"] for _, _, names in reported)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no samples folder given: no grids


def test_a_run_asked_for_no_export_keeps_its_generator_and_registers_no_set(runs_root):
    run = make_run(runs_root, make_config("dcgan", **{**TINY, "steps": 2, "export_per_class": 0}))
    gan_job.run(run)
    assert (run.checkpoints / "generator.pt").exists()
    assert list_sets(runs_root) == []


def test_sample_job_in_a_worker_registers_the_set_the_same_seed_draws_in_process(runs_root):
    from gans.sampling import synthesize

    trained = make_run(runs_root, make_config("dcgan", **{**TINY, "export_per_class": 0}))
    gan_job.run(trained)
    generator = trained.checkpoints / "generator.pt"
    config = SampleConfig(generator=str(generator), origin=trained.id, per_class=7, seed=3, name="seven")
    job = jobs.submit("sample", config.to_dict())
    assert jobs.wait(job, timeout=120) == "done", job.log_path.read_text()
    [info] = list_sets(runs_root)
    assert info.path == job.artifacts / "seven.npz"
    assert (info.meta["generator"], info.meta["run_id"], info.meta["labelled"]) == ("dcgan", trained.id, True)
    drawn = load_set(info.path)
    assert drawn.class_counts().tolist() == [7, 7] and drawn.class_names == ["normal", "pneumonia"]
    gan, _, class_names = load_generator(generator)
    assert np.array_equal(drawn.images, synthesize(gan, 7, class_names, seed=3).images)
    assert job.status()["progress"]["done"] == 14


def test_sample_config_refuses_a_set_name_that_is_not_a_file_name_and_a_missing_generator():
    with pytest.raises(ConfigError, match="SampleConfig.name: .*'../evil'"):
        SampleConfig(generator="g.pt", name="../evil")
    with pytest.raises(ConfigError, match="SampleConfig.generator"):
        SampleConfig(name="fine")
    with pytest.raises(ConfigError, match="SampleConfig.per_class must be at most 20000"):
        SampleConfig(generator="g.pt", per_class=20_001)


def test_a_torn_resume_checkpoint_is_refused_naming_the_file(tmp_path, pneumonia):
    (tmp_path / "last.pt").write_bytes(b"half a checkpoint")
    with pytest.raises(CheckpointError, match=r"last.pt: cannot resume from this checkpoint"):
        trainer.train(make_config("dcgan", **TINY), pneumonia.train, Hooks(checkpoints=tmp_path))
