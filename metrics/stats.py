"""Intervals and paired comparisons used wherever the lab reports a number.

Two regimes: many pairs (image-quality scores: a percentile bootstrap of the mean) and few
seeds (classifier runs: Student-t intervals and a paired t-test against the baseline).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass
class Estimate:
    mean: float
    lo: float  # lower end of the 95% interval
    hi: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Estimate":
        return cls(float(d["mean"]), float(d["lo"]), float(d["hi"]), int(d["n"]))

    def __str__(self) -> str:
        return f"{self.mean:.4g} [{self.lo:.4g}, {self.hi:.4g}] (n={self.n})"


def bootstrap_mean(values, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> Estimate:
    """Mean with a percentile-bootstrap interval (vectorised: one resample matrix)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    if n == 1:
        return Estimate(float(values[0]), float("nan"), float("nan"), 1)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return Estimate(float(values.mean()), float(np.percentile(means, tail)),
                    float(np.percentile(means, 100 - tail)), n)


def t_interval(values, confidence: float = 0.95) -> Estimate:
    """Mean with a Student-t interval: the honest choice for a handful of seeds."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    if n < 2:
        return Estimate(mean, float("nan"), float("nan"), n)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return Estimate(mean, float(mean - half), float(mean + half), n)


@dataclass
class PairedComparison:
    delta: Estimate  # mean of (treatment - baseline) over matched seeds, with a t interval
    p_value: float  # two-sided paired t-test

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.delta.lo) and (self.delta.lo > 0 or self.delta.hi < 0))

    def to_dict(self) -> dict:
        return {**self.delta.to_dict(), "p_value": self.p_value, "significant": self.significant}


def paired_comparison(treatment, baseline, confidence: float = 0.95) -> PairedComparison:
    """Compare two arms run on the same seeds (same real subset per seed)."""
    treatment, baseline = np.asarray(treatment, float), np.asarray(baseline, float)
    if treatment.shape != baseline.shape:
        raise ValueError("paired comparison needs one value per seed in each arm")
    diff = treatment - baseline
    delta = t_interval(diff, confidence)
    if len(diff) < 2 or np.allclose(diff, diff[0]):
        p = 0.0 if len(diff) >= 2 and diff[0] != 0 else float("nan")
    else:
        p = float(stats.ttest_rel(treatment, baseline).pvalue)
    return PairedComparison(delta, p)
