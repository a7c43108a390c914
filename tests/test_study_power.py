"""Power before launch: the seeds a study needs to detect a chosen difference, from the spread of the paired
differences a finished study on the same data measured (else its baseline's, else a rule of thumb)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lab.engine.runs import Run
from lab.study.config import RULE_OF_THUMB_SPREAD
from lab.study.power import seed_plan
from lab.study.summary import write_summary
from metrics.stats import detectable_with
from tests.test_study_verdicts import study_summary


def finished_study(root, summary) -> Run:
    run = Run.create("study", {"seeds": summary.seeds}, root=root)
    write_summary(run.artifacts, summary)
    run.write_status("done")
    return run


def test_without_a_finished_study_the_plan_says_it_rests_on_a_rule_of_thumb(runs_root):
    summary = study_summary()
    plan = seed_plan(summary.dataset, summary.train_fraction, "balanced_accuracy", root=runs_root)
    assert plan.spread == pytest.approx(math.sqrt(2) * RULE_OF_THUMB_SPREAD) and "rule of thumb" in plan.source
    assert plan.seeds is not None and plan.detectable(plan.seeds) <= 0.02 < plan.detectable(plan.seeds - 1)


def test_a_finished_study_on_the_same_data_gives_the_spread_of_its_paired_differences(runs_root):
    summary = study_summary()  # the arms' paired differences from the baseline vary by about 1 point over 3 seeds
    run = finished_study(runs_root, summary)
    plan = seed_plan(summary.dataset, summary.train_fraction, "balanced_accuracy", root=runs_root)
    spreads = [np.std([0.64 - 0.60, 0.67 - 0.62, 0.65 - 0.61], ddof=1), np.std([0.10, 0.12, 0.10], ddof=1)]
    assert plan.spread == pytest.approx(np.median(spreads)) and run.id in plan.source
    assert plan.detectable(3) == pytest.approx(detectable_with(3, plan.spread))
    text = plan.text(3)
    assert f"needs {plan.seeds} seeds" in text and "with 3 it detects" in text and "2.0-point difference" in text
    other = seed_plan(summary.dataset.replace(name="dermamnist"), summary.train_fraction, root=runs_root)
    assert "rule of thumb" in other.source  # another dataset's study says nothing about this one


def test_the_cli_says_how_many_seeds_detect_the_difference_and_what_they_cost_here(runs_root, capsys):
    from lab.cli.study import print_seed_plan, study_config

    config = study_config({}, "quick", dataset="pneumoniamnist")
    print_seed_plan(config, 0.02)
    lines = capsys.readouterr().out.splitlines()
    plan = seed_plan(config.dataset, config.train_fraction, config.primary_metric)
    assert lines[0] == plan.text(len(config.seeds))
    assert lines[1].startswith(f"With {plan.seeds} seeds") and "expected about" in lines[1]
    with pytest.raises(ValueError, match="--detect takes points between 0 and 100"):
        print_seed_plan(config, 2.0)
