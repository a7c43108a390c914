"""Power before launch: how many seeds a paired comparison needs to detect a difference."""
from __future__ import annotations

import numpy as np
import pytest

from metrics.stats import detectable_with, paired_comparison, seeds_to_detect


def test_more_seeds_detect_smaller_differences_and_the_answer_is_the_fewest_that_suffice():
    assert detectable_with(1, 0.02) == float("inf")
    assert detectable_with(3, 0.02) > detectable_with(10, 0.02) > detectable_with(30, 0.02)
    n = seeds_to_detect(0.02, 0.03)
    assert detectable_with(n, 0.03) <= 0.02 < detectable_with(n - 1, 0.03)
    assert seeds_to_detect(0.02, 0.5, most=50) is None  # too noisy for any budget offered
    assert seeds_to_detect(0.0, 0.01) is None


def test_the_seeds_it_asks_for_find_a_true_difference_about_as_often_as_promised():
    """Simulated paired studies: with the seeds `seeds_to_detect` names, a true difference of 2 points is
    significant in about 80% of them (the promised power), and in far fewer with 3 seeds."""
    rng = np.random.default_rng(0)
    difference, spread = 0.02, 0.025
    n = seeds_to_detect(difference, spread)

    def detected(seeds: int, trials: int = 2000) -> float:
        hits = 0
        for _ in range(trials):
            baseline = rng.normal(0.6, 0.03, seeds)
            treated = baseline + rng.normal(difference, spread, seeds)
            hits += paired_comparison(treated, baseline).significant
        return hits / trials

    assert detected(n) == pytest.approx(0.8, abs=0.05)
    assert detected(3) < 0.4
