"""The learning-curve pilot: the smallest budget at which a study's baseline clears the trivial classifier.

A study whose baseline does not clearly beat always predicting the majority class cannot judge augmentation
(lab/study/verdicts.py `trivial_check`). The pilot trains the baseline arm alone over a ladder of budgets,
step counts × real training fractions from the study's own upwards, cheapest first (fewer steps, then the
smaller fraction), on the study's first seeds, and stops at the first budget whose baseline passes that same
rule. It judges on the validation split, never the test split, with the trivial classifier scored there: the
budget is chosen before the study's one look at the test split. Each score is the selected model's (best
validation score over its evaluations, as the study selects), so it leans optimistic: a budget that only just
clears may still leave the study's test verdict unable to judge.

The named budget is a study config's `train.steps` and `train_fraction` (`apply_budget`, the CLI's `--steps`
and `--fraction`; the Study page's "Apply this budget"), every other setting as the study had it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from classifier.evaluate import CLASSIFICATION_METRICS, Trivial
from classifier.train import train_classifier
from data.config import MAX_STEPS, Config, ConfigError, option
from data.datasets import load_dataset
from data.files import atomic_write_json, read_json
from data.hooks import Hooks
from lab.study.arm import standard_augment
from lab.study.config import StudyConfig
from lab.study.summary import ArmSummary
from lab.study.verdicts import metric_name, trivial_check
from metrics.stats import t_interval

PILOT_FILE = "pilot.json"


@dataclass(frozen=True)
class Budget:
    steps: int
    fraction: float

    @property
    def flags(self) -> str:
        """The study command's flags for this budget."""
        return f"--steps {self.steps} --fraction {self.fraction}"

    @property
    def key(self) -> str:
        return f"{self.steps}-{self.fraction}"


@dataclass(frozen=True)
class PilotConfig(Config):
    """A learning-curve pilot of a study's baseline arm."""
    study: StudyConfig = field(default_factory=StudyConfig)
    seeds: int = option(2, label="Seeds per budget", min=1, max=5,
                        help="the study's first seeds; each budget trains the baseline once per seed")
    step_factors: list[int] = option(factory=lambda: [1, 4, 16], label="Step factors",
                                     help="the ladder's step counts: the study's times these")
    fraction_factors: list[float] = option(factory=lambda: [1.0, 3.0, 9.0], label="Fraction factors",
                                           help="the ladder's training fractions: the study's times these, at "
                                                "most the whole training split")
    max_steps: int = option(5000, label="Most steps", min=1, max=MAX_STEPS,
                            help="the ladder takes no step count above this (the study's own always)")
    study_run: str = option("", label="Study run", help="the study whose verdict asked for it, if any")

    def validate(self) -> None:
        if self.seeds > len(self.study.seeds):
            raise ConfigError(f"PilotConfig.seeds: {self.seeds}; the study has {len(self.study.seeds)} seed(s)")
        for name, factors in (("step_factors", self.step_factors), ("fraction_factors", self.fraction_factors)):
            if not factors or min(factors) < 1 or len(factors) > 8:
                raise ConfigError(f"PilotConfig.{name}: give 1 to 8 factors of at least 1; got {factors}")
        baseline = self.study.baseline
        if baseline.kind_of.generated:
            raise ConfigError(f"PilotConfig.study: its baseline '{baseline.name}' is a {baseline.kind} arm; the pilot "
                              f"trains a baseline of real images (give the study a real-only arm)")


def budgets(config: PilotConfig) -> list[Budget]:
    """The ladder, cheapest first: the study's steps × `step_factors` (at most `max_steps`), each with its
    fraction × `fraction_factors` (at most 1), the study's own budget first."""
    study = config.study
    steps = sorted({study.train.steps, *(min(round(study.train.steps * f), MAX_STEPS) for f in config.step_factors
                                         if study.train.steps * f <= config.max_steps)})
    fractions = sorted({study.train_fraction, *(round(min(1.0, study.train_fraction * f), 6)
                                                for f in config.fraction_factors)})
    return [Budget(s, f) for s in steps for f in fractions]


def apply_budget(study: StudyConfig, budget: Budget) -> StudyConfig:
    """The study at `budget`: its steps and training fraction, evaluated as often relative to its steps."""
    every = max(1, round(study.train.eval_every * budget.steps / study.train.steps))
    return study.replace(train_fraction=budget.fraction,
                         train=study.train.replace(steps=budget.steps, eval_every=every))


@dataclass
class PilotResult:
    """What a pilot found: every budget it tried in order, and the first that clears (None: none did)."""
    metric: str
    majority_class: str
    tried: list[dict]  # {"steps", "fraction", "images", "seeds", "metric": Estimate dict, "accuracy": mean,
    #                     "trivial": the trivial classifier's metric on val, "majority_rate", "short_of": reason}
    budget: Budget | None

    @property
    def text(self) -> str:
        if self.budget is None:
            last = self.tried[-1]
            return (f"No budget up to {last['steps']} steps and training fraction {last['fraction']:g} lets the "
                    f"baseline clear the trivial classifier on the validation split: {last['short_of']}.")
        row = next(r for r in self.tried if r["steps"] == self.budget.steps and r["fraction"] == self.budget.fraction)
        return (f"The baseline clears the trivial classifier from {self.budget.steps} steps at training fraction "
                f"{self.budget.fraction:g} ({row['images']} images): {metric_name(self.metric)} "
                f"{100 * row['metric']['mean']:.1f}% on the validation split over {row['seeds']} seed(s), the "
                f"trivial classifier's {100 * row['trivial']:.1f}%. Run the study with {self.budget.flags}.")

    def to_dict(self) -> dict:
        return {"metric": self.metric, "majority_class": self.majority_class, "tried": self.tried,
                "budget": None if self.budget is None else {"steps": self.budget.steps,
                                                            "fraction": self.budget.fraction},
                "text": self.text}

    @classmethod
    def from_dict(cls, d: dict) -> "PilotResult":
        budget = d.get("budget")
        return cls(d["metric"], d["majority_class"], list(d["tried"]),
                   None if budget is None else Budget(int(budget["steps"]), float(budget["fraction"])))


def run_pilot(config: PilotConfig, hooks: Hooks, scratch: Path) -> PilotResult:
    """Train the study's baseline at each budget of the ladder until one clears the trivial classifier.

    `scratch`: a folder for resumable state; each (budget, seed) keeps its checkpoint in a folder of its own,
    and finished ones their validation scores in `scratch`/done.json, so a resumed pilot redoes nothing."""
    study, arm = config.study, config.study.baseline
    data = load_dataset(study.dataset)
    val = data.val
    done_file = Path(scratch) / "done.json"
    done = read_json(done_file, {}) or {}
    tried, ladder = [], budgets(config)
    for number, budget in enumerate(ladder, 1):
        candidate = apply_budget(study, budget)
        train_config = candidate.train.replace(balance=arm.balance)
        scores, subset = [], None
        for seed in study.seeds[:config.seeds]:
            subset = data.train.stratified_subset(budget.fraction, seed)
            key = f"{budget.key}|{seed}"
            if key not in done:
                label = (f"budget {number}/{len(ladder)} ({budget.steps} steps, fraction {budget.fraction:g}), "
                         f"seed {seed}")
                folder = Path(scratch) / key.replace("|", "-seed")
                folder.mkdir(parents=True, exist_ok=True)
                trained = train_classifier(subset.images, subset.labels, val.images, val.labels,
                                           data.train.num_classes, train_config, seed=seed,
                                           augment=standard_augment(arm, study.dataset.name),
                                           hooks=_labelled(hooks, label, folder))
                done[key] = {m: float(trained.best_val[m]) for m in CLASSIFICATION_METRICS}
                atomic_write_json(done_file, done)
            scores.append(done[key])
        trivial = Trivial.of(subset.labels, val.labels, data.class_names)
        short_of = trivial_check(_as_arm(arm.name, arm.kind, scores, budget.steps, study.seeds[:config.seeds]),
                                 trivial, study.primary_metric)
        metric = t_interval([s[study.primary_metric] for s in scores])
        tried.append({"steps": budget.steps, "fraction": budget.fraction, "images": len(subset), "seeds": len(scores),
                      "metric": metric.to_dict(), "accuracy": float(np.mean([s["accuracy"] for s in scores])),
                      "trivial": trivial.scores[study.primary_metric], "majority_rate": trivial.majority_rate,
                      "short_of": short_of})
        hooks.event(type="pilot", **{k: v for k, v in tried[-1].items() if k != "metric"},
                    score=metric.mean, cleared=not short_of)
        if not short_of:
            return PilotResult(study.primary_metric, trivial.majority_class, tried, budget)
    return PilotResult(study.primary_metric, trivial.majority_class, tried, None)


def _as_arm(name: str, kind: str, scores: list[dict], steps: int, seeds: list[int]) -> ArmSummary:
    """The baseline over its seeds as the trivial rule reads an arm: its metrics with their intervals."""
    return ArmSummary(arm=name, kind=kind, synthetic_set=None,
                      metrics={m: t_interval([s[m] for s in scores]) for m in CLASSIFICATION_METRICS},
                      per_class_recall=[], confusion=[], steps=[steps], seeds=list(seeds))


def _labelled(hooks: Hooks, label: str, checkpoints: Path) -> Hooks:
    """`hooks` for one training of the ladder: its progress prefixed with `label`, its checkpoint in a folder of
    its own, no sample grids."""
    def progress(done, total, message="", force=False, **metrics):
        hooks.progress(done, total, message=f"{label}: {message}", force=force, **metrics)
    return Hooks(progress=progress, event=hooks.event, should_stop=hooks.should_stop, checkpoints=checkpoints)


def write_pilot(folder: Path, result: PilotResult) -> Path:
    return atomic_write_json(Path(folder) / PILOT_FILE, result.to_dict())


def read_pilot(folder: Path) -> PilotResult | None:
    """A finished pilot's result from its artifacts folder; None while it has none; ValueError naming a bad file."""
    path = Path(folder) / PILOT_FILE
    if not path.exists():
        return None
    try:
        return PilotResult.from_dict(read_json(path))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a pilot result: {type(e).__name__}: {e}") from None

