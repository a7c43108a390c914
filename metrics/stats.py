"""Intervals and paired comparisons used wherever the lab reports a number.

Three regimes: many pairs (image-quality scores: a percentile bootstrap of the mean), counted
events (the share of suspected copies: the exact Clopper–Pearson interval of a binomial
proportion, which stays honest at 0 of n) and few seeds (classifier runs: Student-t intervals and
a paired t-test against the baseline).
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


def proportion(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """The share `successes / n` with its exact Clopper–Pearson interval (from beta quantiles).

    Never zero-width: 0 of 1400 is 0 [0, 0.00263], the share whose chance of showing no success
    in 1400 tries is 2.5%. A bootstrap would say [0, 0] there, as if no rate above zero were possible.
    """
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    tail = (1 - confidence) / 2
    lo = float(stats.beta.ppf(tail, successes, n - successes + 1)) if successes > 0 else 0.0
    hi = float(stats.beta.ppf(1 - tail, successes + 1, n - successes)) if successes < n else 1.0
    return Estimate(successes / n, lo, hi, n)


def percent(share: float) -> str:
    """A share in [0, 1] as a percentage: one decimal, two below 1% so that a small share keeps two digits (0.26%)."""
    return f"{share:.2%}" if 0 < abs(share) < 0.01 else f"{share:.1%}"


def percent_interval(e: Estimate) -> str:
    """ "0.0% [0.0%, 0.26%]": a share and its interval in percent."""
    return f"{percent(e.mean)} [{percent(e.lo)}, {percent(e.hi)}]"


def balanced_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Mean recall over the classes present in `labels` (int arrays of the same length), in [0, 1]."""
    return float(np.mean([(predicted[labels == k] == k).mean() for k in np.unique(labels)]))


def balanced_accuracy_p_value(predicted: np.ndarray, labels: np.ndarray, n_permutations: int = 2000,
                              seed: int = 0) -> float:
    """One-sided p-value of the balanced accuracy of fixed predictions against chance.

    The null is "predictions carry no information about the labels": the labels are permuted
    `n_permutations` times and p = (1 + permutations scoring at least as well) / (1 + n_permutations),
    so it is never 0 and a constant classifier (every permutation ties) gets p = 1.
    """
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    observed = balanced_accuracy(predicted, labels)
    classes = np.unique(labels)
    counts = np.array([(labels == k).sum() for k in classes])
    rng = np.random.default_rng(seed)
    at_least, chunk = 0, max(1, 2_000_000 // max(len(labels), 1))  # bounded memory: chunk × n booleans
    for start in range(0, n_permutations, chunk):
        shuffled = rng.permuted(np.broadcast_to(labels, (min(chunk, n_permutations - start), len(labels))), axis=1)
        hits = shuffled == predicted[None, :]
        recalls = np.stack([(hits & (shuffled == k)).sum(1) / n for k, n in zip(classes, counts)], axis=1)
        at_least += int((recalls.mean(1) >= observed - 1e-12).sum())
    return (1 + at_least) / (1 + n_permutations)


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


def spread_of(estimate: Estimate, confidence: float = 0.95) -> float | None:
    """The standard deviation of the values behind a `t_interval` (None below 2 values)."""
    if estimate.n < 2 or not np.isfinite(estimate.hi):
        return None
    return float((estimate.hi - estimate.mean) * np.sqrt(estimate.n) / stats.t.ppf(0.5 + confidence / 2, estimate.n - 1))


def detectable_with(seeds: int, spread: float, power: float = 0.8, confidence: float = 0.95) -> float:
    """The smallest true paired difference that `seeds` seeds detect with probability `power` (two-sided
    paired t-test at 1 − `confidence`), when the differences vary from seed to seed with standard
    deviation `spread`; inf below 2 seeds."""
    if seeds < 2:
        return float("inf")
    dof = seeds - 1
    return float((stats.t.ppf(0.5 + confidence / 2, dof) + stats.t.ppf(power, dof)) * spread / np.sqrt(seeds))


def seeds_to_detect(difference: float, spread: float, power: float = 0.8, confidence: float = 0.95,
                    most: int = 200) -> int | None:
    """The fewest seeds with which a paired comparison detects a true `difference` (`detectable_with`);
    None when even `most` seeds would not."""
    if difference <= 0 or not np.isfinite(spread):
        return None
    return next((n for n in range(2, most + 1) if detectable_with(n, spread, power, confidence) <= difference), None)
