"""Estimates before launch (lab/engine/eta.py): a stated rule of thumb without past runs, then the pace of this
machine's real finished runs of the same kind and settings, for a GAN, a study and the CLI."""
from __future__ import annotations

import time

import pytest

from classifier.train import TrainConfig
from gans.config import make_config
from lab.cli import main
from lab.engine import eta, jobs
from lab.engine.eta import IDLE, Busy, duration, estimate, ran_alone_factor, slowdown
from lab.engine.runs import Run, list_runs
from lab.kinds.study import run as run_study
from lab.study.config import ArmConfig, StudyConfig, filtered_arms, recipe_arms
from metrics.curation import CurationConfig, CurationRule, expected_seconds as scoring_seconds
from metrics.encoder import STEP_S

PNEUMONIA = {"name": "pneumoniamnist", "size": 28}


def tiny_gan(**overrides) -> dict:
    settings = {"dataset": PNEUMONIA, "steps": 20, "export_per_class": 0, "log_every": 10, "sample_every": 1000,
                "checkpoint_every": 1000, **overrides}
    return make_config("dcgan", "quick", **settings).to_dict()


def span(run: Run) -> float:
    status = run.raw_status()
    return status["finished"] - status["started"]


@pytest.fixture
def short_runs_pace(monkeypatch):
    """These tests' past runs last seconds, less than MIN_PACE_S: let them pace, to test the pacing itself."""
    monkeypatch.setattr(eta, "MIN_PACE_S", 0.0)


@pytest.fixture(scope="module")
def finished_gan(tmp_path_factory):
    """A real 20-step DCGAN run, finished by its own worker process."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_RUNS_DIR", str(root))
        run = jobs.submit("gan", tiny_gan())
        assert jobs.wait(run, timeout=300) == "done", run.log_path.read_text()
    return root, run


def test_without_past_runs_the_estimate_says_it_is_a_rough_guess_that_grows_with_the_steps(runs_root):
    short, long = estimate("gan", tiny_gan(steps=1000), IDLE), estimate("gan", tiny_gan(steps=4000), IDLE)
    assert not short.calibrated
    assert short.text == (f"expected about {duration(short.seconds)}, a rough guess: no past dcgan quick run like it "
                          f"here yet")
    assert 0 < short.seconds < long.seconds < 4 * short.seconds  # start-up is paid once


def test_a_finished_run_paces_the_next_one_with_the_same_settings(finished_gan, monkeypatch, short_runs_pace):
    root, run = finished_gan
    monkeypatch.setenv("LAB_RUNS_DIR", str(root))
    guess = estimate("gan", tiny_gan(steps=40, batch_size=32))
    assert not guess.calibrated  # another batch size sets another pace

    paced = estimate("gan", tiny_gan(steps=40), IDLE)
    assert paced.calibrated and paced.seconds == pytest.approx(2 * span(run) / ran_alone_factor(run.raw_status()))
    assert paced.text == f"expected about {duration(paced.seconds)} on this machine, from 1 past dcgan quick run like it"


def test_a_resumed_run_paces_nothing(finished_gan, tmp_path, monkeypatch, short_runs_pace):
    root, run = finished_gan
    copy = tmp_path / "runs"
    (copy / "gan").mkdir(parents=True)
    resumed = Run(copy / "gan" / run.id)
    resumed.path.mkdir()
    for name in ("config.json", "status.json", "events.jsonl"):
        (resumed.path / name).write_bytes((run.path / name).read_bytes())
    resumed.log_event(type="resume", step=10)  # its started → finished span holds the time it stood stopped
    monkeypatch.setenv("LAB_RUNS_DIR", str(copy))
    assert not estimate("gan", tiny_gan()).calibrated


def test_a_run_too_short_to_pace_from_paces_nothing(runs_root):
    run = jobs.submit("gan", tiny_gan(steps=3))
    assert jobs.wait(run, timeout=300) == "done", run.log_path.read_text()
    guess = estimate("gan", tiny_gan(steps=1500), IDLE)
    assert not guess.calibrated
    assert guess.text.endswith("a rough guess: no past dcgan quick run like it here yet")
    assert span(run) < eta.MIN_PACE_S  # its span was the worker's start-up, mostly


def test_the_cli_prints_the_estimate_before_it_queues(finished_gan, monkeypatch, capsys, short_runs_pace):
    root, _ = finished_gan
    monkeypatch.setenv("LAB_RUNS_DIR", str(root))
    monkeypatch.setattr(jobs, "schedule", lambda root=None: [])  # queue only
    assert main(["train-gan", "--dataset", "pneumoniamnist", "--set", "steps=20", "--set", "export_per_class=0",
                 "--set", "log_every=10", "--set", "sample_every=1000", "--set", "checkpoint_every=1000",
                 "--detach"]) == 0
    first, queued = capsys.readouterr().out.splitlines()[:2]
    assert first.startswith("expected about ") and first.endswith(" on this machine, from 1 past dcgan quick run like it")
    assert queued.endswith("queued at " + str(list_runs("gan")[0].path))


def tiny_study(arms: list[ArmConfig], seeds: list[int]) -> StudyConfig:
    return StudyConfig(dataset=PNEUMONIA, train_fraction=0.03, seeds=seeds, arms=arms,
                       train=TrainConfig(steps=6, batch_size=16, eval_every=6))


def test_a_study_is_paced_by_its_past_classifier_runs_and_names_what_is_guessed(runs_root, monkeypatch,
                                                                                 short_runs_pace):
    monkeypatch.setenv("LAB_CHILD_WORKERS", "1")
    run = Run.create("study", tiny_study([ArmConfig("real only")], [0, 1]).to_dict())
    run_study(run)
    arms = [child for child in list_runs("study-arm") if child.state == "done"]
    assert len(arms) == 2

    same = estimate("study", tiny_study([ArmConfig("real only")], [0, 1, 2]).to_dict(), IDLE)
    pace = sorted(span(child) / 6 / ran_alone_factor(child.raw_status()) for child in arms)
    assert same.calibrated and same.seconds == pytest.approx(3 * 6 * sum(pace) / 2)
    assert same.text.endswith(": 3 classifier runs, from 2 past classifier runs like them")
    monkeypatch.setenv("LAB_CHILD_WORKERS", "2")  # side by side: 2 rounds for 3 runs
    paired = estimate("study", tiny_study([ArmConfig("real only")], [0, 1, 2]).to_dict(), IDLE)
    assert paired.seconds == pytest.approx(2 * 6 * sum(pace) / 2)
    assert "(2 side by side): 3 classifier runs" in paired.text
    monkeypatch.setenv("LAB_CHILD_WORKERS", "1")

    more = estimate("study", tiny_study([ArmConfig("real only"), ArmConfig("real + aug", "standard_aug"),
                                         *recipe_arms(["dcgan"])], [0, 1]).to_dict(), IDLE)
    assert not more.calibrated
    assert more.text.startswith(f"expected about {duration(more.seconds)}: ")
    for part in ("2 dcgan quick runs, a rough guess: no past dcgan quick run like them here yet",
                 "4 classifier runs, from 2 past classifier runs like them",
                 "2 classifier runs, a rough guess: no past classifier run like them here yet"):
        assert part in more.text


def test_a_filtered_arm_counts_its_filters_scoring_by_its_models_steps_and_folds(runs_root, monkeypatch):
    """Each filtered (arm, seed) first trains a class classifier and one critic per fold on its seed's images."""
    monkeypatch.setenv("LAB_CHILD_WORKERS", "1")  # one after another: the parts' seconds add up
    plain = recipe_arms(["dcgan"])

    def study(twin: ArmConfig) -> eta.Estimate:
        return estimate("study", tiny_study([ArmConfig("real only"), *plain, twin], [0, 1]).to_dict(), IDLE)

    def filtered(scoring: CurationConfig) -> eta.Estimate:
        return study(filtered_arms(plain, CurationRule(min_confidence=0.5), scoring)[0])

    unfiltered = study(plain[0].replace(name="real + dcgan again")).seconds
    default = filtered(CurationConfig())
    assert "2 filtered classifier runs, a rough guess: no past filtered classifier run like them here yet" in \
        default.text
    # 3% of PneumoniaMNIST is 141 real images and its DCGAN makes 142: each of the 6 models takes its 300 steps
    per_seed = scoring_seconds(real=141, generated=142, side=28, config=CurationConfig())
    assert per_seed == pytest.approx(6 * 300 * STEP_S)
    assert default.seconds - unfiltered == pytest.approx(2 * per_seed)
    assert filtered(CurationConfig(steps=600)).seconds - default.seconds == pytest.approx(2 * per_seed)
    assert filtered(CurationConfig(folds=10)).seconds - default.seconds == pytest.approx(2 * 5 * 300 * STEP_S)


def test_gpnn_is_estimated_in_seconds_growing_with_pixels_variations_and_seeds(runs_root):
    from gans.gpnn import gpnn_config

    small = estimate("gpnn", gpnn_config("quick", mode="image", image_path="/x.png", max_side=64).to_dict())
    large = estimate("gpnn", gpnn_config("quick", mode="image", image_path="/x.png", max_side=128).to_dict())
    more = estimate("gpnn", gpnn_config("quick", mode="image", image_path="/x.png", max_side=128,
                                        variations=20).to_dict())
    seeds = estimate("gpnn", gpnn_config("quick", mode="seeds", dataset={"name": "pneumoniamnist"},
                                         seeds_per_class=2).to_dict())
    assert small.seconds < large.seconds < more.seconds < 60
    assert "GPNN quick image" in large.text and "4 GPNN quick images" in seeds.text


def test_the_busy_model_shares_the_cores_among_everything_that_wants_one():
    assert slowdown(Busy(0, 0.0, 2)) == 1.0  # alone
    assert slowdown(Busy(0, 9.0, 2)) == pytest.approx(5.5)  # the load 5-13 on 2 cores: 42 s becomes 231 s
    assert slowdown(Busy(3, 7.8, 2)) == pytest.approx(4.9)  # 3 two-thread jobs and a little more
    assert slowdown(Busy(3, 0.4, 2)) == pytest.approx(4.0)  # jobs just started: the load average has not caught up
    assert slowdown(Busy(0, 1.0, 2), threads=1) == 1.0  # a one-thread child beside one other: a core each
    assert slowdown(Busy(0, 3.0, 4), threads=1) == 1.0 and slowdown(Busy(0, 4.0, 4), threads=1) == pytest.approx(1.25)
    # a finished run that held its 2 threads at a mean load of 6 ran beside 4 cores' worth of others
    others = Busy(0, 4.0, eta.machine_cores())
    assert ran_alone_factor({"load_mean": 6.0, "threads": 2}) == pytest.approx(slowdown(others, 2))
    assert ran_alone_factor({}) == 1.0  # a run of a lab that did not record its load


def test_a_busy_estimate_names_the_other_jobs_and_the_load_and_gives_the_time_alone(runs_root):
    busy = estimate("gan", tiny_gan(steps=1000), Busy(3, 6.0, 2))
    assert busy.expected_seconds == pytest.approx(4 * busy.seconds)
    assert busy.text == (f"expected about {duration(4 * busy.seconds)} with 3 other jobs running (load 6.0 on 2 "
                         f"cores); {duration(busy.seconds)} alone, a rough guess: no past dcgan quick run like it here "
                         f"yet")
    assert "1 other job running (load 2.0 on 2 cores)" in estimate("gan", tiny_gan(), Busy(1, 2.0, 2)).text
    idle = estimate("gan", tiny_gan(steps=1000), Busy(0, 0.2, 2))  # slowed by 1.1: called idle, one figure
    assert idle.text.startswith(f"expected about {duration(idle.seconds)}, a rough guess")


def test_a_running_job_of_the_lab_counts_as_busy_and_records_the_load_it_ran_under(runs_root):
    counting = jobs.submit("count", {"steps": 600, "delay": 0.05})
    try:
        while counting.state == "queued" or not (counting.raw_status().get("progress") or {}).get("done"):
            time.sleep(0.2)
        assert eta.busy_now().other_jobs == 1
        assert "1 other job running" in estimate("gan", tiny_gan()).text
        status = counting.raw_status()
        assert status["threads"] >= 1 and status["load_mean"] >= 0
    finally:
        jobs.cancel(counting)
        jobs.wait(counting, timeout=60)
    assert eta.busy_now().other_jobs == 0


def test_a_batched_study_is_paced_by_past_stacks_and_groups_like_its_own(runs_root, monkeypatch, short_runs_pace):
    """Before any batched run, a batched study's stacks and groups are priced as their members one at a time;
    after one, by the pace of that GAN stack and that classifier group."""
    monkeypatch.setenv("LAB_CHILD_WORKERS", "1")
    recipe = {"latent": 8, "width": 8, "batch_size": 8, "steps": 6, "log_every": 2, "sample_every": 100,
              "checkpoint_every": 100}
    arms = [ArmConfig("real only"), *recipe_arms(["dcgan"], settings=recipe)]
    study = tiny_study(arms, [0, 1]).replace(batched="on")
    before = estimate("study", study.to_dict(), IDLE)
    assert "stack" not in before.text and "group" not in before.text
    assert "2 dcgan quick runs, a rough guess" in before.text and "4 classifier runs, a rough guess" in before.text

    run_study(Run.create("study", study.to_dict()))
    (stack,), (group,) = list_runs("gan-stack"), list_runs("study-group")
    after = estimate("study", study.to_dict(), IDLE)
    assert after.text.endswith(": 1 dcgan quick stack of 2, from 1 past dcgan quick stack of 2 like it; "
                               "1 batched classifier group of 4, from 1 past batched classifier group of 4 like it")
    paced = [span(run) / ran_alone_factor(run.raw_status()) for run in (stack, group)]
    assert after.seconds == pytest.approx(sum(paced))
    assert not list_runs("gan") and not list_runs("study-arm")
