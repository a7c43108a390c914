"""What a finished study found (summary.json), read back for pages and reports; and before
launch, how precise a number of seeds will be."""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from classifier.evaluate import Trivial
from classifier.train import TrainConfig
from data.datasets import DatasetSpec, load_dataset
from data.files import atomic_write_json, read_json
from lab.engine.runs import Run, list_runs
from lab.study.arm_runs import ArmRun, arm_runs_of
from lab.study.config import RULE_OF_THUMB_SPREAD, SUMMARY_FILE, ArmKind, arm_kind
from lab.study.leaks import same_data
from metrics.stats import Estimate, PairedComparison, spread_of


def _comparison(d: dict) -> PairedComparison:
    return PairedComparison(Estimate.from_dict(d), float(d["p_value"]))


def _comparisons(d: dict | None) -> dict[str, PairedComparison]:
    return {m: _comparison(c) for m, c in (d or {}).items()}


@dataclass
class FilterSummary:
    """What a filtered recipe arm's filter did on each seed: its rule, and per seed the seed, the images generated,
    kept, kept per class and how many each threshold rejected (result.json's "filter")."""
    rule: str
    seeds: list[dict]

    SEED_KEYS = ("seed", "generated", "kept", "kept_per_class", "dropped_because")

    @classmethod
    def of(cls, rule: str, results: list[dict]) -> "FilterSummary | None":
        """From the arm's result.json of each seed; None when none was filtered."""
        seeds = [{k: r["seed"] if k == "seed" else r["filter"][k] for k in cls.SEED_KEYS} for r in results
                 if "filter" in r]
        return cls(rule, seeds) if seeds else None

    def reasons(self) -> dict[str, int]:
        """Rejections per threshold summed over the seeds, most first; thresholds that rejected none left out."""
        total: dict[str, int] = {}
        for seed in self.seeds:
            for why, n in seed["dropped_because"].items():
                total[why] = total.get(why, 0) + n
        return dict(sorted(((why, n) for why, n in total.items() if n), key=lambda item: -item[1]))

    def to_dict(self) -> dict:
        return {"rule": self.rule, "seeds": self.seeds}

    @classmethod
    def from_dict(cls, d: dict) -> "FilterSummary":
        return cls(str(d["rule"]), [{k: s[k] for k in cls.SEED_KEYS} for s in d["seeds"]])


@dataclass
class ArmSummary:
    """One arm over the seeds on the real test split; scores are fractions in [0, 1]."""
    arm: str
    kind: str
    synthetic_set: str | None  # fixed-set arms: the set's id or path
    metrics: dict[str, Estimate]  # CLASSIFICATION_METRICS -> mean with its 95% t-interval over seeds
    per_class_recall: list[float]  # mean over seeds, one per class
    confusion: list[list[int]]  # summed over seeds, rows = truth
    steps: list[int]  # distinct optimizer-step counts of its runs: one value when the budget was equal
    seeds: list[int]
    verdict: str = ""
    # The paired comparison with the baseline (arm − baseline, CLASSIFICATION_METRICS -> delta); empty for the baseline.
    vs_baseline: dict[str, PairedComparison] = field(default_factory=dict)
    per_class_recall_delta: list[float] | None = None  # recall − the baseline's, per class
    balance: str = "none"  # its class balancing (BALANCE_MODES)
    recipe: str = ""  # recipe arms: the generator recipe trained inside each seed
    leak: str = ""  # fixed sets: "generator trained on N real images, classifier on M" when it saw more or unknown
    copy_rate: Estimate | None = None  # recipe arms: share of its synthetic images that copy its seed's subset
    reference: str = ""  # generator arms: the strongest reference arm on the primary metric
    # The paired comparison with `reference` when it is not the baseline (else it is `vs_baseline`).
    vs_reference: dict[str, PairedComparison] = field(default_factory=dict)
    filter: FilterSummary | None = None  # filtered recipe arms: what the filter kept of each seed's images

    @property
    def kind_of(self) -> ArmKind:
        """Its kind's properties (none for a kind this lab does not know)."""
        return arm_kind(self.kind)

    @property
    def is_generator_arm(self) -> bool:
        return self.kind_of.generated

    @property
    def against_reference(self) -> dict[str, PairedComparison]:
        """The comparison with the strongest reference arm (the baseline's when that is the strongest)."""
        return self.vs_reference or self.vs_baseline

    def to_dict(self) -> dict:
        d = {"arm": self.arm, "kind": self.kind, "synthetic_set": self.synthetic_set, "balance": self.balance,
             "recipe": self.recipe, "leak": self.leak,
             "metrics": {m: e.to_dict() for m, e in self.metrics.items()},
             "per_class_recall": self.per_class_recall, "confusion": self.confusion, "steps": self.steps,
             "seeds": self.seeds}
        if self.copy_rate is not None:
            d["copy_rate"] = self.copy_rate.to_dict()
        if self.vs_baseline:
            d["vs_baseline"] = {m: c.to_dict() for m, c in self.vs_baseline.items()}
            d["per_class_recall_delta"] = self.per_class_recall_delta
        if self.reference:
            d["reference"] = self.reference
        if self.vs_reference:
            d["vs_reference"] = {m: c.to_dict() for m, c in self.vs_reference.items()}
        if self.filter is not None:
            d["filter"] = self.filter.to_dict()
        d["verdict"] = self.verdict
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArmSummary":
        return cls(arm=d["arm"], kind=d["kind"], synthetic_set=d["synthetic_set"],
                   metrics={m: Estimate.from_dict(e) for m, e in d["metrics"].items()},
                   per_class_recall=list(d["per_class_recall"]), confusion=d["confusion"], steps=list(d["steps"]),
                   seeds=list(d["seeds"]), verdict=d["verdict"], vs_baseline=_comparisons(d.get("vs_baseline")),
                   per_class_recall_delta=d.get("per_class_recall_delta"), balance=d.get("balance", "none"),
                   recipe=d.get("recipe", ""), leak=d.get("leak", ""),
                   copy_rate=Estimate.from_dict(d["copy_rate"]) if d.get("copy_rate") else None,
                   reference=d.get("reference", ""), vs_reference=_comparisons(d.get("vs_reference")),
                   filter=FilterSummary.from_dict(d["filter"]) if d.get("filter") else None)


@dataclass
class StudySummary:
    """summary.json: what a finished study found, arm by arm (the baseline first among equals)."""
    dataset: DatasetSpec
    train_fraction: float
    seeds: list[int]
    primary_metric: str  # one of CLASSIFICATION_METRICS
    baseline: str  # the name of the arm the others are compared with
    class_names: list[str]
    study_run: str | None  # the study's run directory
    arms: list[ArmSummary]
    trivial: Trivial | None = None  # None in summaries written before it was recorded
    baseline_margin: Estimate | None = None  # the baseline's accuracy − the majority-class rate, over seeds
    cannot_judge: str = ""  # why the baseline does not clearly beat the trivial classifier; "" when it does
    strongest_reference: str = ""  # the reference arm with the best mean primary metric

    def arm(self, name: str) -> ArmSummary:
        return next(a for a in self.arms if a.arm == name)

    def gains(self) -> list[tuple[ArmSummary, PairedComparison]]:
        """Each arm that trained on a fixed synthetic set, with its gain on the primary metric over the
        strongest reference arm."""
        return [(arm, arm.against_reference[self.primary_metric]) for arm in self.arms
                if arm.synthetic_set and self.primary_metric in arm.against_reference]

    def to_dict(self) -> dict:
        return {"dataset": self.dataset.to_dict(), "train_fraction": self.train_fraction, "seeds": self.seeds,
                "primary_metric": self.primary_metric, "baseline": self.baseline, "class_names": self.class_names,
                "study_run": self.study_run,
                "trivial": self.trivial.to_dict() if self.trivial else None,
                "baseline_margin": self.baseline_margin.to_dict() if self.baseline_margin else None,
                "cannot_judge": self.cannot_judge, "strongest_reference": self.strongest_reference,
                "arms": [a.to_dict() for a in self.arms]}

    @classmethod
    def from_dict(cls, d: dict) -> "StudySummary":
        return cls(dataset=DatasetSpec.from_dict(d["dataset"]), train_fraction=float(d["train_fraction"]),
                   seeds=list(d["seeds"]), primary_metric=d["primary_metric"], baseline=d["baseline"],
                   class_names=list(d["class_names"]), study_run=d["study_run"],
                   arms=[ArmSummary.from_dict(a) for a in d["arms"]],
                   trivial=Trivial.from_dict(d["trivial"]) if d.get("trivial") else None,
                   baseline_margin=Estimate.from_dict(d["baseline_margin"]) if d.get("baseline_margin") else None,
                   cannot_judge=d.get("cannot_judge", ""), strongest_reference=d.get("strongest_reference", ""))


def write_summary(folder: Path, summary: StudySummary) -> Path:
    return atomic_write_json(Path(folder) / SUMMARY_FILE, summary.to_dict())


def read_summary(study_run: Run) -> StudySummary | None:
    """The summary of a finished study, or None while it has none; a malformed file is a ValueError naming it."""
    path = study_run.artifacts / SUMMARY_FILE
    if not path.exists():
        return None
    data = read_json(path)
    try:
        return StudySummary.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as e:
        raise ValueError(f"{path} is not a study summary: {type(e).__name__}: {e}") from None


# --- before launch: how precise will it be? ------------------------------------------------------

@dataclass
class ExpectedInterval:
    """The 95% interval a paired difference between two arms can expect from a number of seeds."""
    seeds: int
    halfwidth: float  # fraction; inf below 2 seeds
    spread: float  # the seed-to-seed standard deviation of one arm's score it assumes
    source: str  # where that spread comes from

    @property
    def text(self) -> str:
        if not np.isfinite(self.halfwidth):
            return f"With {self.seeds} seed there is no interval at all: a difference cannot be told from noise."
        return (f"With {self.seeds} seeds, a difference between two arms will carry a 95% interval of about "
                f"±{100 * self.halfwidth:.1f} points (seed-to-seed spread {100 * self.spread:.1f} points: "
                f"{self.source}).")


def finished_studies(dataset: DatasetSpec, train_fraction: float, root: Path | None = None
                     ) -> Iterator[tuple[Run, StudySummary]]:
    """The finished studies on the same data and training fraction, with their summaries, newest first."""
    for run in list_runs("study", root=root):
        try:
            summary = read_summary(run) if run.state == "done" else None
        except ValueError:
            continue
        if summary is not None and same_data(summary.dataset, dataset) and summary.train_fraction == train_fraction:
            yield run, summary


def expected_interval(seeds: int, dataset: DatasetSpec, train_fraction: float, metric: str = "balanced_accuracy",
                      root: Path | None = None) -> ExpectedInterval:
    """The expected half-width from the baseline's seed-to-seed spread in the newest finished study on the
    same data and fraction, else RULE_OF_THUMB_SPREAD; two arms' differences are taken as independent
    (spread × √2), which a paired design usually beats."""
    spread, source = RULE_OF_THUMB_SPREAD, "a rule of thumb; no finished study on these data yet"
    for run, summary in finished_studies(dataset, train_fraction, root):
        m = summary.arm(summary.baseline).metrics.get(metric)
        if m is not None and spread_of(m) is not None:
            spread, source = spread_of(m), f"the baseline of study {run.id}"
            break
    halfwidth = (stats.t.ppf(0.975, seeds - 1) * math.sqrt(2) * spread / math.sqrt(seeds) if seeds >= 2
                 else float("inf"))
    return ExpectedInterval(seeds, float(halfwidth), spread, source)


# --- reading finished studies (the page, Grad-CAM) ----------------------------------------------

def study_results(study_run: Run) -> list[dict]:
    """result.json of every finished arm run of a study, in the order they ran."""
    results = [read_json(arm.artifacts / "result.json") for arm in arm_runs_of(study_run).values()]
    return [r for r in results if r]


def arm_model(arm_run: ArmRun):
    """The selected classifier of a finished arm run (weights loaded with weights_only=True)."""
    from classifier.model import build_model

    config = arm_run.config
    data = load_dataset(config["dataset"])
    train = TrainConfig.from_dict(config["train"])
    model = build_model(data.train.num_classes, data.train.channels, data.train.size, train.variant)
    path = arm_run.artifacts / "best.pt"
    if not path.exists():
        raise FileNotFoundError(f"{arm_run.id} has no trained weights yet ({path})")
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
