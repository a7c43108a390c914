"""Power before launch: how many seeds a study needs to detect the difference a user cares about.

Two arms are compared seed by seed (a paired t-test), so what limits a study is how much the paired
difference between two arms varies from seed to seed. The newest finished study on the same data and
training fraction measured it (the spread of its arms' differences from the baseline); without one,
its baseline's own spread counts twice (two independent arms, × √2), and without any study a rule of
thumb does. From that spread `seed_plan` gives the fewest seeds that detect a chosen difference with
80% power (`metrics.stats.seeds_to_detect`) and what the planned seeds can detect.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.datasets import DatasetSpec
from lab.study.config import RULE_OF_THUMB_SPREAD
from lab.study.summary import StudySummary, finished_studies
from lab.study.verdicts import metric_name
from metrics.stats import detectable_with, seeds_to_detect, spread_of

DEFAULT_DIFFERENCE = 0.02  # the difference to detect, in the primary metric (a fraction: 2 points)
MOST_SEEDS = 100  # StudyConfig's limit


@dataclass(frozen=True)
class SeedPlan:
    """The seeds a paired comparison of two arms needs to detect `difference` with 80% power."""
    metric: str
    difference: float  # fraction
    seeds: int | None  # None: more than MOST_SEEDS
    spread: float  # the seed-to-seed standard deviation of a paired difference it assumes (fraction)
    source: str  # where that spread comes from

    def detectable(self, seeds: int) -> float:
        """The smallest difference `seeds` seeds detect with 80% power (fraction; inf below 2)."""
        return detectable_with(seeds, self.spread)

    def text(self, planned: int) -> str:
        """e.g. "To detect a 2.0-point difference in balanced accuracy (80% power) a study needs 10 seeds; with
        3 it detects 6.2 points (paired differences vary by 2.0 points from seed to seed: the arms of study X)."""
        wanted = f"To detect a {100 * self.difference:.1f}-point difference in {metric_name(self.metric)} (80% power)"
        needs = (f"a study needs {self.seeds} seeds" if self.seeds is not None
                 else f"a study needs more than {MOST_SEEDS} seeds")
        now = self.detectable(planned)
        with_planned = (f"with {planned} it detects {100 * now:.1f} points" if np.isfinite(now)
                        else f"with {planned} seed it detects nothing")
        return (f"{wanted} {needs}; {with_planned} (paired differences vary by {100 * self.spread:.1f} points "
                f"from seed to seed: {self.source}).")


def seed_plan(dataset: DatasetSpec, train_fraction: float, metric: str = "balanced_accuracy",
              difference: float = DEFAULT_DIFFERENCE, root: Path | None = None) -> SeedPlan:
    """The seeds needed to detect `difference` in `metric`, from the newest finished study on the same data."""
    spread, source = _paired_spread(dataset, train_fraction, metric, root)
    return SeedPlan(metric, difference, seeds_to_detect(difference, spread, most=MOST_SEEDS), spread, source)


def _paired_spread(dataset: DatasetSpec, train_fraction: float, metric: str, root: Path | None) -> tuple[float, str]:
    for run, summary in finished_studies(dataset, train_fraction, root):
        measured = _spread_of_differences(summary, metric)
        if measured is not None:
            return measured, f"the arms of study {run.id}"
        baseline = summary.arm(summary.baseline).metrics.get(metric)
        if baseline is not None and spread_of(baseline) is not None:
            return math.sqrt(2) * spread_of(baseline), f"the baseline of study {run.id}, taken twice"
    return math.sqrt(2) * RULE_OF_THUMB_SPREAD, "a rule of thumb; no finished study on these data yet"


def _spread_of_differences(summary: StudySummary, metric: str) -> float | None:
    """The median, over a study's arms, of the seed-to-seed spread of their paired difference from the baseline."""
    spreads = [s for arm in summary.arms if metric in arm.vs_baseline
               for s in [spread_of(arm.vs_baseline[metric].delta)] if s is not None]
    return float(np.median(spreads)) if spreads else None
