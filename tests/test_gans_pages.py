"""Train GAN and Samples pages in Streamlit's AppTest, with real tiny GAN runs on DermaMNIST."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from data.synthetic import load_set
from gans.config import make_config
from gans.stack import GanStackConfig
from lab.engine import jobs
from lab.engine.runs import Run, list_runs
from lab.kinds import gan as gan_job
from lab.kinds import gan_stack as gan_stack_job
from lab.kinds import sample as sample_job
from lab.sets import list_sets
from pages.common import plain

PAGES = Path(__file__).resolve().parent.parent / "pages"
TINY = dict(latent=16, width=8, batch_size=16, steps=6, log_every=3, sample_every=3, checkpoint_every=3,
            export_per_class=2, device="cpu")


def no_errors(at: AppTest) -> AppTest:
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_train_page_launches_a_gan_job_with_the_chosen_options(runs_root, monkeypatch):
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])  # queue only: no worker in this test
    at = no_errors(AppTest.from_file(str(PAGES / "train_gan.py"), default_timeout=120).run())
    at.selectbox[0].select("wgan_gp").run()
    steps = next(n for n in at.number_input if n.label == "Generator steps")
    steps.set_value(300).run()
    no_errors(at.button[0].click().run())
    [run] = list_runs("gan")
    config = run.config
    assert (config["gan"], config["steps"], config["d_steps"], config["per_class"]) == ("wgan_gp", 300, 5, True)
    assert config["dataset"]["name"] == "dermamnist"
    no_errors(at.run())  # the run table and live view render for a queued run


def test_train_page_offers_diffaugment_and_the_ema_generator(runs_root, monkeypatch):
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])
    at = no_errors(AppTest.from_file(str(PAGES / "train_gan.py"), default_timeout=120).run())
    next(t for t in at.text_input if t.label == "DiffAugment policy").input("color,cutout").run()
    next(n for n in at.number_input if n.label == "Generator EMA decay").set_value(0.995).run()
    no_errors(at.button[0].click().run())
    [run] = list_runs("gan")
    assert (run.config["diffaugment"], run.config["ema"]) == ("color,cutout", 0.995)


def test_samples_page_shows_a_finished_run_and_exports_through_a_sample_job(runs_root, derma, monkeypatch):
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])  # queue only: the test runs the job below
    run = Run.create("gan", make_config("dcgan", **TINY).to_dict(), root=runs_root)
    gan_job.run(run)
    run.write_status("done")
    at = no_errors(AppTest.from_file(str(PAGES / "samples.py"), default_timeout=120).run())
    assert len(at.get("image")) == 7 + 1 + 2 * 7  # class grids, interpolation strip, real|synthetic pairs
    sets_before = len(list_sets(runs_root))
    per_class = next(n for n in at.number_input if n.label == "Images per class")
    per_class.set_value(3).run()
    no_errors(next(b for b in at.button if b.label == "Generate and register the set").click().run())
    [job] = list_runs("sample")
    assert job.state == "queued" and len(list_sets(runs_root)) == sets_before  # nothing drawn in the page
    assert (job.config["per_class"], job.config["origin"]) == (3, run.id)

    sample_job.run(job)  # what the worker does
    job.write_status("done")
    no_errors(at.run())
    sets = list_sets(runs_root)
    assert len(sets) == sets_before + 1
    exported = load_set(sets[0].path)
    assert exported.class_counts().tolist() == [3] * 7
    assert any("Registered 21 images" in s.value for s in at.success)


def test_train_page_refuses_to_launch_a_config_that_does_not_build(runs_root, monkeypatch):
    """The form's widgets keep values in range, but a value the config refuses (a training fraction of 0)
    disables the launch button and says why, instead of queueing a run that would fail."""
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])
    at = no_errors(AppTest.from_file(str(PAGES / "train_gan.py"), default_timeout=120).run())
    next(n for n in at.number_input if n.label == "Training fraction").set_value(0.0).run()
    assert any(plain("train_fraction must be above 0") in e.value for e in at.error)
    assert at.button[0].label == "Launch training" and at.button[0].disabled


def test_samples_page_without_finished_runs_says_what_to_do(runs_root):
    at = no_errors(AppTest.from_file(str(PAGES / "samples.py"), default_timeout=60).run())
    assert any("No finished GAN runs" in i.value for i in at.info)


def test_samples_page_offers_each_seeds_generator_of_a_gan_stack_and_exports_from_the_chosen_one(
        runs_root, derma, monkeypatch):
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])  # queue only: the test runs the job below
    members = [make_config("dcgan", **TINY, train_fraction=0.1, seed=seed) for seed in (4, 7)]
    stack = Run.create("gan-stack", GanStackConfig(members=members).to_dict(), root=runs_root)
    gan_stack_job.run(stack)
    stack.write_status("done")
    at = no_errors(AppTest.from_file(str(PAGES / "samples.py"), default_timeout=120).run())
    [picker] = [s for s in at.selectbox if s.label == "Run"]
    assert [option.rsplit(" · ", 1)[1] for option in picker.options] == ["seed 4's generator", "seed 7's generator"]
    picker.set_value(str(stack.checkpoints / "generator-m1.pt")).run()
    next(n for n in at.number_input if n.label == "Images per class").set_value(3).run()
    no_errors(next(b for b in at.button if b.label == "Generate and register the set").click().run())
    [job] = list_runs("sample")
    assert job.config["generator"] == str(stack.checkpoints / "generator-m1.pt") and job.config["origin"] == stack.id
    sample_job.run(job)
    job.write_status("done")
    no_errors(at.run())
    assert any("Registered 21 images" in s.value for s in at.success)
