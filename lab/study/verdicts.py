"""How a study judges its arms, in numbers and in sentences.

- `trivial_check`: a baseline that does not clearly beat the trivial classifier (always the training
  subset's majority class, `classifier.evaluate.Trivial`) has learned too little for any
  augmentation to be judged, and every verdict then says so first.
- `detectable_difference`: the smallest true difference a study's seeds would detect (80% power).
- `verdict`: one paragraph per arm that hides no loss: the difference on the primary metric with
  its interval (a generator arm against the strongest reference arm and against the baseline),
  the minimum detectable difference, every significant drop on another metric, the copy rate of a
  recipe arm, what a filtered arm's filter kept of each seed and why it dropped the rest, and first of all
  the caution of a leaky fixed set.
Scores are fractions in [0, 1]; sentences speak in percent and points.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from classifier.evaluate import METRIC_LABELS, CLASSIFICATION_METRICS, Trivial
from lab.study.config import ArmConfig, StudyConfig
from lab.study.summary import ArmSummary, FilterSummary, StudySummary
from metrics.stats import Estimate, PairedComparison, paired_comparison, t_interval

POWER = 0.8  # of the minimum detectable difference


def trivial_check(base: ArmSummary, trivial: Trivial, metric: str) -> str:
    """Why the baseline does not clearly beat the trivial classifier ("" when it does): its accuracy must
    not be below the majority-class rate, and its primary-metric interval must lie above the trivial score."""
    accuracy, primary, floor = base.metrics["accuracy"], base.metrics[metric], trivial.scores[metric]
    if accuracy.mean < trivial.majority_rate:
        return (f"the baseline {base.arm} (accuracy {_pct(accuracy.mean)}) does worse than always predicting "
                f"the majority class {trivial.majority_class} ({_pct(trivial.majority_rate)})")
    lowest = primary.lo if np.isfinite(primary.lo) else primary.mean
    if not lowest > floor:
        return (f"the baseline {base.arm}'s {metric_name(metric)} ({_pct(primary.mean)}"
                f"{_interval_pct(primary)}) is not clearly above the trivial classifier's ({_pct(floor)})")
    return ""


def detectable_difference(delta: Estimate, power: float = POWER) -> float:
    """The smallest true difference (a fraction) these seeds would find significant with probability `power`
    (two-sided paired t-test at 5%), given the spread of the observed differences; NaN below 2 seeds."""
    if delta.n < 2 or not np.isfinite(delta.hi):
        return float("nan")
    t_half = stats.t.ppf(0.975, delta.n - 1)
    return float((t_half + stats.t.ppf(power, delta.n - 1)) * (delta.hi - delta.mean) / t_half)


def verdict(arm: ArmSummary, summary: StudySummary) -> str:
    """What a reader can act on, in sentences: the baseline's level and its margin over the trivial
    classifier; for other arms the difference on the primary metric (generator arms: against the
    strongest reference arm and against the baseline), the minimum detectable difference, every
    significant drop on another metric, the copy rate and the leak flag."""
    metric, label = summary.primary_metric, metric_name(summary.primary_metric)
    if arm.arm == summary.baseline:
        return _baseline_verdict(arm, summary)
    parts = [f"[{arm.leak}]"] if arm.leak else []
    if summary.cannot_judge:
        parts.append(f"Cannot judge augmentation: {summary.cannot_judge}. Measured anyway:")
    reference = arm.reference or summary.baseline
    comparison = arm.against_reference[metric]
    d = comparison.delta
    if d.n < 2 or not np.isfinite(d.lo):
        parts.append(f"{_points(d.mean)} {label} vs {reference} from {_seeds(d.n)}: too few seeds for an "
                     f"interval; no conclusion.")
    else:
        named = f"{reference} (the strongest reference arm)" if arm.reference else reference
        text = f"{_points(d.mean)} {label} vs {named}, 95% interval {_interval_points(d)} over {d.n} paired seeds"
        if comparison.significant:
            parts.append(f"{text}: {'better' if d.mean > 0 else 'worse'} than {reference} (the interval excludes "
                         f"zero).")
        else:
            parts.append(f"No detectable difference: {text} (the interval includes zero).")
        if arm.vs_reference:
            base = arm.vs_baseline[metric]
            state = ("better" if base.delta.mean > 0 else "worse") if base.significant else \
                "no detectable difference"
            parts.append(f"Vs {summary.baseline}: {_points(base.delta.mean)} {_interval_points(base.delta)}, "
                         f"{state}.")
        parts.append(f"Minimum detectable difference: {100 * detectable_difference(d):.1f} points.")
    drops = _drops(arm, summary)
    if drops:
        parts.append(f"Significant drop{'s' if len(drops) > 1 else ''}: {'; '.join(drops)}.")
    if arm.copy_rate is not None:
        parts.append(f"Suspected copies of its seed's real images: {_pct(arm.copy_rate.mean)} of its synthetic "
                     f"images.")
    if arm.filter is not None:
        parts.append(filter_text(arm.filter))
    return " ".join(parts)


def filter_text(kept: FilterSummary) -> str:
    """What a filter did, in one sentence: kept of generated on each seed, and the thresholds that rejected the rest."""
    seeds = ", ".join(f"{s['kept']} of {s['generated']} ({_pct(s['kept'] / max(s['generated'], 1))}) on seed "
                      f"{s['seed']}" for s in kept.seeds)
    reasons = ", ".join(f"{why} {n}" for why, n in kept.reasons().items())
    return (f"Filter ({kept.rule}) kept, of the images generated: {seeds}; "
            + (f"rejected over the seeds (an image can fail several): {reasons}." if reasons else "it dropped none."))


def _baseline_verdict(arm: ArmSummary, summary: StudySummary) -> str:
    m = arm.metrics[summary.primary_metric]
    text = (f"Baseline: {metric_name(summary.primary_metric)} {_pct(m.mean)}"
            f"{_interval_pct(m)} over {_seeds(m.n)}.")
    trivial, margin = summary.trivial, summary.baseline_margin
    if trivial is not None and margin is not None:
        text += (f" Always predicting the majority class ({trivial.majority_class}) scores accuracy "
                 f"{_pct(trivial.majority_rate)}; the baseline's accuracy is {_points(margin.mean)}"
                 f"{' ' + _interval_points(margin) if np.isfinite(margin.lo) else ''} above it.")
    if summary.cannot_judge:
        text += f" This study cannot judge augmentation: {summary.cannot_judge}."
    return text


def _drops(arm: ArmSummary, summary: StudySummary) -> list[str]:
    """Every metric besides the primary one on which the arm is significantly worse than a comparison arm."""
    comparisons = {summary.baseline: arm.vs_baseline}
    if arm.vs_reference:
        comparisons = {arm.reference: arm.vs_reference, **comparisons}
    return [f"{metric_name(m)} {_points(c.delta.mean)} {_interval_points(c.delta)} vs {name}"
            for name, against in comparisons.items() for m, c in against.items()
            if m != summary.primary_metric and c.significant and c.delta.mean < 0]


def metric_name(metric: str) -> str:
    """A metric's label inside a sentence: "balanced accuracy", "macro-F1", "AUC (one-vs-rest)"."""
    label = METRIC_LABELS[metric]
    return label if label[:2].isupper() else label[0].lower() + label[1:]


def _seeds(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _points(x: float) -> str:
    return f"{100 * x:+.1f} points"


def _interval_pct(e: Estimate) -> str:
    return f", 95% interval [{100 * e.lo:.1f}, {100 * e.hi:.1f}]" if np.isfinite(e.lo) else ""


def _interval_points(e: Estimate) -> str:
    return f"[{100 * e.lo:+.1f}, {100 * e.hi:+.1f}]"


# --- the summary: every arm over the seeds, judged ------------------------------------------

def summarize(study: StudyConfig, results: list[dict], class_names: list[str], trivial: Trivial,
              flags: dict[str, str] | None = None, study_run: str | None = None) -> StudySummary:
    """Per arm, mean ± 95% t-interval per metric over its seeds (`results`: the arms' result.json), the
    paired comparisons with the baseline and, for generator arms, with the strongest reference arm;
    `flags`: arm name -> the leak flag of `check_sets`. Every arm gets its verdict."""
    flags = flags or {}
    by_arm = {arm.name: {r["seed"]: r for r in results if r["arm"] == arm.name} for arm in study.arms}
    metric = study.primary_metric
    arms = [_arm_summary(arm, by_arm[arm.name], study.seeds, flags.get(arm.name, "")) for arm in study.arms]
    base = next(a for a in arms if a.arm == study.baseline.name)
    references = [a for a in arms if a.kind_of.reference and a.seeds]
    strongest = max(references, key=lambda a: a.metrics[metric].mean, default=base)
    for arm in arms:
        if arm is base:
            continue
        arm.vs_baseline = _paired(by_arm[arm.arm], by_arm[base.arm])
        base_recall = np.mean([by_arm[base.arm][s]["test"]["per_class_recall"] for s in arm.seeds
                               if s in by_arm[base.arm]], 0)
        arm.per_class_recall_delta = (np.array(arm.per_class_recall) - base_recall).tolist()
        if arm.is_generator_arm:
            arm.reference = strongest.arm
            if strongest is not base:
                arm.vs_reference = _paired(by_arm[arm.arm], by_arm[strongest.arm])
    summary = StudySummary(dataset=study.dataset, train_fraction=study.train_fraction, seeds=list(study.seeds),
                           primary_metric=metric, baseline=base.arm, class_names=list(class_names),
                           study_run=study_run, arms=arms, trivial=trivial,
                           baseline_margin=t_interval([by_arm[base.arm][s]["test"]["accuracy"] - trivial.majority_rate
                                                       for s in base.seeds]),
                           cannot_judge=trivial_check(base, trivial, metric), strongest_reference=strongest.arm)
    for arm in arms:
        arm.verdict = verdict(arm, summary)
    return summary


def _arm_summary(arm: ArmConfig, runs: dict[int, dict], seeds: list[int], leak: str) -> ArmSummary:
    seeds = [s for s in seeds if s in runs]
    copies = [runs[s]["copy_rate"] for s in seeds if "copy_rate" in runs[s]]
    return ArmSummary(
        arm=arm.name, kind=arm.kind, synthetic_set=arm.synthetic_set, balance=arm.balance,
        recipe=arm.recipe.label if arm.recipe else "", leak=leak,
        metrics={m: t_interval([runs[s]["test"][m] for s in seeds]) for m in CLASSIFICATION_METRICS},
        per_class_recall=np.mean([runs[s]["test"]["per_class_recall"] for s in seeds], 0).tolist(),
        confusion=np.sum([runs[s]["test"]["confusion"] for s in seeds], 0).tolist(),
        steps=sorted({runs[s]["steps"] for s in seeds}), seeds=seeds,
        copy_rate=t_interval(copies) if copies else None,
        filter=FilterSummary.of(arm.filter.text, [runs[s] for s in seeds]) if arm.filter is not None else None)


def _paired(runs: dict[int, dict], other: dict[int, dict]) -> dict[str, PairedComparison]:
    """runs − other on every metric, over the seeds both ran."""
    seeds = [s for s in runs if s in other]
    return {m: paired_comparison([runs[s]["test"][m] for s in seeds], [other[s]["test"][m] for s in seeds])
            for m in CLASSIFICATION_METRICS}
