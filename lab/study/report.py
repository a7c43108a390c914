"""The study's report: a CSV of every number and a self-contained HTML page with the figures.

Everything here reads a `StudySummary` (lab/study/) and the arms' result.json. The text and
table (`yardsticks`, `arm_table`) and the figure builders are shared with the Study page:
`bars_figure` (grouped bars with 95% error bars), `confusion_figure` (seaborn heatmaps,
one per arm), `recall_delta_figure` and `curve_figure` (matplotlib).
"""
from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from classifier.evaluate import METRIC_LABELS, CLASSIFICATION_METRICS  # noqa: E402
from data.files import atomic_write_text, csv_text  # noqa: E402
from lab.study.summary import FilterSummary, StudySummary  # noqa: E402
from lab.study.verdicts import detectable_difference, metric_name  # noqa: E402
from metrics.stats import PairedComparison  # noqa: E402


def report_rows(summary: StudySummary) -> list[dict]:
    """One row per (arm, metric): mean and interval, the paired delta vs the baseline and, for generator
    arms, vs the strongest reference arm with the minimum detectable difference; a leaky arm's flag in
    every row of it."""
    rows = []
    for arm in summary.arms:
        for m in CLASSIFICATION_METRICS:
            est = arm.metrics[m]
            row = {"arm": arm.arm, "kind": arm.kind, "balance": arm.balance,
                   "source": arm.synthetic_set or arm.recipe, "caution": arm.leak,
                   "metric": m, "mean": est.mean, "lo": est.lo, "hi": est.hi, "n": est.n,
                   **_delta_columns("", arm.vs_baseline.get(m)),
                   "reference": arm.reference, **_delta_columns("ref_", arm.against_reference.get(m) if arm.reference
                                                                else None),
                   "copy_rate": arm.copy_rate.mean if arm.copy_rate is not None else "",
                   "filter_kept": _kept_share(arm.filter)}
            rows.append(row)
    return rows


def arm_table(summary: StudySummary) -> list[dict]:
    """One row per arm for the page and the CLI: the primary metric (points) with its interval, the
    difference from the arm it is judged against, the minimum detectable difference, the copy rate,
    what a filter kept of each seed's generated images (when an arm is filtered) and the caution of a leaky arm."""
    metric, rows = summary.primary_metric, []
    filtered = any(arm.filter is not None for arm in summary.arms)
    for arm in summary.arms:
        m = arm.metrics[metric]
        comparison = arm.against_reference.get(metric)
        d = comparison.delta if comparison is not None else None
        rows.append({"arm": arm.arm, "kind": arm.kind, "balance": arm.balance,
                     METRIC_LABELS[metric]: f"{100 * m.mean:.1f}" + _points_interval(m.lo, m.hi, "{:.1f}"),
                     "vs": (arm.reference or summary.baseline) if d is not None else "",
                     "difference (points)": "" if d is None else f"{100 * d.mean:+.1f}"
                                                                 + _points_interval(d.lo, d.hi, "{:+.1f}"),
                     "detectable (points)": "" if d is None or not np.isfinite(detectable_difference(d))
                     else f"{100 * detectable_difference(d):.1f}",
                     "copies": "" if arm.copy_rate is None else f"{100 * arm.copy_rate.mean:.1f}%",
                     **({"filter kept": _kept_per_seed(arm.filter)} if filtered else {}),
                     "caution": arm.leak})
    return rows


def _kept_per_seed(kept: FilterSummary | None) -> str:
    return "" if kept is None else ", ".join(f"{s['kept']}/{s['generated']}" for s in kept.seeds)


def _kept_share(kept: FilterSummary | None) -> float | str:
    """The share of the generated images the filter kept, over all its seeds."""
    return "" if kept is None else sum(s["kept"] for s in kept.seeds) / max(1, sum(s["generated"] for s in kept.seeds))


def _points_interval(lo: float, hi: float, fmt: str) -> str:
    return f" [{fmt.format(100 * lo)}, {fmt.format(100 * hi)}]" if np.isfinite(lo) else ""


def _delta_columns(prefix: str, comparison: PairedComparison | None) -> dict:
    names = [f"{prefix}{k}" for k in ("delta", "delta_lo", "delta_hi", "p_value", "significant", "detectable")]
    if comparison is None:
        return dict.fromkeys(names, "")
    d = comparison.delta
    return dict(zip(names, (d.mean, d.lo, d.hi, comparison.p_value, comparison.significant,
                            detectable_difference(d))))


def bars_figure(summary: StudySummary):
    """Grouped bars: one group per metric, one bar per arm, the 95% interval as error bars (the page and the
    static report draw this one figure)."""
    arms = summary.arms
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / len(arms)
    x = np.arange(len(CLASSIFICATION_METRICS))
    for i, arm in enumerate(arms):
        est = [arm.metrics[m] for m in CLASSIFICATION_METRICS]
        mean = np.array([e.mean for e in est])
        err = np.array([[_nan0(e.mean - e.lo) for e in est], [_nan0(e.hi - e.mean) for e in est]])
        ax.bar(x + (i - (len(arms) - 1) / 2) * width, mean, width, yerr=err, capsize=3, label=arm.arm)
    ax.set_xticks(x, [METRIC_LABELS[m] for m in CLASSIFICATION_METRICS])
    ax.set_ylim(0, 1)
    ax.set_ylabel("test score (mean, 95% CI)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def confusion_figure(summary: StudySummary):
    """Row-normalised confusion matrices (summed over seeds), one seaborn heatmap per arm."""
    arms, names = summary.arms, short_names(summary.class_names)
    fig, axes = plt.subplots(1, len(arms), figsize=(4.2 * len(arms), 3.8), squeeze=False)
    for ax, arm in zip(axes[0], arms):
        cm = np.asarray(arm.confusion, dtype=float)
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        sns.heatmap(cm, ax=ax, vmin=0, vmax=1, cmap="Blues", annot=len(names) <= 8, fmt=".2f", cbar=False,
                    xticklabels=names, yticklabels=names, annot_kws={"fontsize": 7})
        ax.set_title(arm.arm, fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def recall_delta_figure(summary: StudySummary):
    """Per-class recall of each arm minus the baseline's (points), averaged over seeds."""
    arms = [a for a in summary.arms if a.per_class_recall_delta is not None]
    names = short_names(summary.class_names)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    if not arms:
        ax.text(0.5, 0.5, "only the baseline arm", ha="center", va="center")
        ax.axis("off")
        return fig
    width = 0.8 / len(arms)
    x = np.arange(len(names))
    for i, arm in enumerate(arms):
        ax.bar(x + (i - (len(arms) - 1) / 2) * width, 100 * np.asarray(arm.per_class_recall_delta), width,
               label=arm.arm)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, names, rotation=20, fontsize=7, ha="right")
    ax.set_ylabel(f"recall − {summary.baseline} (points)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def curve_figure(results: list[dict], metric: str = "val_balanced_accuracy"):
    """Validation score against optimizer step, mean over seeds, one line per arm."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for arm in dict.fromkeys(r["arm"] for r in results):
        histories = [r["history"] for r in results if r["arm"] == arm]
        steps = [h["step"] for h in histories[0]]
        values = np.array([[h.get(metric) for h in hist[:len(steps)]] for hist in histories
                           if len(hist) >= len(steps)], dtype=float)
        ax.plot(steps, values.mean(0), marker="o", label=arm)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_report(out: Path, summary: StudySummary, results: list[dict]) -> None:
    """report.csv, per-seed results.csv and report.html into the folder `out` (a study's artifacts)."""
    rows = report_rows(summary)
    atomic_write_text(out / "report.csv", csv_text(rows))
    cautions = {arm.arm: arm.leak for arm in summary.arms}
    per_seed = [{"arm": r["arm"], "seed": r["seed"], "steps": r["steps"], "best_step": r["best_step"],
                 **{m: r["test"][m] for m in CLASSIFICATION_METRICS}, "copy_rate": r.get("copy_rate", ""),
                 **_filter_columns(r.get("filter")), "caution": cautions.get(r["arm"], "")} for r in results]
    atomic_write_text(out / "results.csv", csv_text(per_seed))
    figures = {"Test scores": bars_figure(summary), "Per-class recall vs baseline": recall_delta_figure(summary),
               "Confusion matrices (test, summed over seeds)": confusion_figure(summary),
               "Validation curves": curve_figure(results)}
    images = {title: _png(fig) for title, fig in figures.items()}
    atomic_write_text(out / "report.html", _html(summary, rows, per_seed, images))


def _filter_columns(kept: dict | None) -> dict:
    """results.csv's filter columns of one (arm, seed): images generated, kept, and the thresholds' rejections."""
    if kept is None:
        return {"filter_generated": "", "filter_kept": "", "filter_dropped": ""}
    dropped = "; ".join(f"{why} {n}" for why, n in kept["dropped_because"].items() if n)
    return {"filter_generated": kept["generated"], "filter_kept": kept["kept"], "filter_dropped": dropped}


def yardsticks(summary: StudySummary) -> str:
    """What the arms are measured against, in sentences: the trivial classifier, the baseline's margin
    above it, the strongest reference arm (and, when the baseline does not beat the trivial
    classifier, that the study cannot judge augmentation)."""
    parts = []
    trivial, margin = summary.trivial, summary.baseline_margin
    if trivial is not None and margin is not None:
        interval = f" [{100 * margin.lo:+.1f}, {100 * margin.hi:+.1f}]" if np.isfinite(margin.lo) else ""
        parts.append(f"Always predicting the majority class ({trivial.majority_class}) scores accuracy "
                     f"{100 * trivial.majority_rate:.1f}% and {metric_name(summary.primary_metric)} "
                     f"{100 * trivial.scores[summary.primary_metric]:.1f}%; the baseline {summary.baseline}'s "
                     f"accuracy margin above it is {100 * margin.mean:+.1f} points{interval}.")
    if summary.strongest_reference:
        parts.append(f"Strongest reference arm on {metric_name(summary.primary_metric)}: "
                     f"{summary.strongest_reference}; every generator arm is judged against it.")
    if summary.cannot_judge:
        parts.append(f"This study cannot judge augmentation: {summary.cannot_judge}.")
    return " ".join(parts)


def _html(summary: StudySummary, rows: list[dict], per_seed: list[dict], images: dict[str, str]) -> str:
    e = html.escape
    verdicts = "".join(f"<li><b>{e(a.arm)}</b>: {e(a.verdict)}</li>" for a in summary.arms)
    table = _table(rows, lambda v: f"{v:.4f}" if isinstance(v, float) else e(str(v)))
    seeds = _table(per_seed, lambda v: f"{v:.4f}" if isinstance(v, float) else e(str(v)))
    figs = "".join(f"<h3>{e(t)}</h3><img src='data:image/png;base64,{b}'/>" for t, b in images.items())
    ds = summary.dataset
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Augmentation study</title><style>"
            f"body{{font-family:sans-serif;max-width:1100px;margin:auto}}table{{border-collapse:collapse;"
            f"font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px}}img{{max-width:100%}}</style></head>"
            f"<body><h1>Augmentation study</h1><p>{e(ds.name)} at {ds.size} px, "
            f"{100 * summary.train_fraction:.0f}% of the real training split, seeds {summary.seeds}, "
            f"primary metric {e(summary.primary_metric)}, baseline <b>{e(summary.baseline)}</b>. "
            f"Every arm took the same number of optimizer steps; synthetic images were used for training only; "
            f"models were selected on the real validation split and tested once on the real test split. "
            f"Generated {time.strftime('%Y-%m-%d %H:%M')}.</p><p>{e(yardsticks(summary))}</p>"
            f"<h2>Verdicts</h2><ul>{verdicts}</ul>"
            f"<h2>Figures</h2>{figs}<h2>All numbers (mean, 95% t-interval; paired delta vs the baseline and vs "
            f"the strongest reference arm, with the minimum detectable difference)</h2>{table}"
            f"<h2>Per seed</h2>{seeds}</body></html>")


def _table(rows: list[dict], fmt) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def short_names(names: list[str], width: int = 14) -> list[str]:
    """Class names cut to fit an axis (DermaMNIST's run to 46 characters)."""
    return [n if len(n) <= width else n[:width - 1] + "…" for n in names]


def _nan0(x: float) -> float:
    return 0.0 if not np.isfinite(x) else float(x)
