"""The augmentation study: does adding a generator's images make the classifier better?

A study trains the same EfficientNet once per (arm, seed) and compares the arms on the real
test split. It is fair by construction:
- every arm takes the same number of optimizer steps (`TrainConfig.steps`);
- for a given seed every arm starts from the same real subset (`stratified_subset(fraction, seed)`);
- synthetic images enter training data only; model selection uses the real validation split;
- the test split is evaluated once, with the selected weights.

Each (arm, seed) is a "study-arm" run with its own directory, events and checkpoint, queued as a
child of the study (lab/children.py: free worker slots take them, the study runs the rest in its
own process); the job adapters are in lab/kinds/study.py. Each arm records what it actually
trained and evaluated on (`composition.json`, `data_seen.npz`), so fairness is checked on the
data, not assumed. The study then aggregates over seeds (mean with a Student-t 95% interval),
compares each arm with the baseline seed by seed (paired t) and writes `summary.json`
(`StudySummary`, what the Study page, the CLI, the report and the leaderboard read).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from classifier.evaluate import METRIC_LABELS, METRICS, evaluate
from classifier.train import Augment, TrainConfig, TrainResult, train_classifier
from data.augment import AUGMENTATIONS, apply, build_pipeline, default_pipeline
from data.config import Config, ConfigError, option
from data.datasets import DatasetSpec, load_dataset
from data.files import atomic_write_json, read_json
from data.hooks import NO_HOOKS, Hooks
from data.imageset import ImageSet
from data.synthetic import load_set
from lab.children import read_children
from lab.runs import Run
from metrics.stats import Estimate, PairedComparison, paired_comparison, t_interval

ARM_KINDS = ("real", "standard_aug", "synthetic", "synthetic_only")
SYNTHETIC_KINDS = ("synthetic", "synthetic_only")  # the arms that train on a synthetic set
MIX_MODES = ("ratio", "balance")
PRESETS = ("quick", "paper")
SUMMARY_FILE = "summary.json"


# --- configs ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArmConfig(Config):
    name: str = option(label="Arm name", help="unique within the study; names its runs and its results")
    kind: str = option("real", label="Kind", choices=ARM_KINDS,
                       help="real: the real subset only; standard_aug: real with albumentations; synthetic: real "
                            "+ a synthetic set; synthetic_only: the synthetic set alone (tested on real)")
    synthetic_set: str | None = option(None, label="Synthetic set",
                                       help="path of a synthetic set .npz (synthetic arms only); stored absolute")
    mix: str = option("ratio", label="Mix", choices=MIX_MODES,
                      help="ratio: ratio × (real count) synthetic images; balance: top up every class to the "
                           "largest real class")
    ratio: float = option(1.0, label="Synthetic per real image", min=0, min_exclusive=True)
    augment: list[str] | None = option(None, label="Augmentations",
                                       help="standard_aug arms: data.augment transforms in order; none = the "
                                            "dataset's standard pipeline (data.augment.default_pipeline)")
    augment_strength: float = option(1.0, label="Augmentation strength", min=0, max=1, min_exclusive=True)
    augment_p: float = option(0.5, label="Probability per transform", min=0, max=1)

    def validate(self) -> None:
        where = f"ArmConfig '{self.name}'"
        if not self.name.strip():
            raise ConfigError("ArmConfig.name: an arm needs a name")
        if self.kind in SYNTHETIC_KINDS and not self.synthetic_set:
            raise ConfigError(f"{where}: a {self.kind} arm needs a synthetic_set")
        if self.kind not in SYNTHETIC_KINDS and self.synthetic_set:
            raise ConfigError(f"{where}: a {self.kind} arm takes no synthetic_set (got {self.synthetic_set})")
        unknown = [n for n in self.augment or [] if n not in AUGMENTATIONS]
        if unknown:
            raise ConfigError(f"{where}: unknown augmentation(s) {', '.join(map(repr, unknown))} "
                              f"(known: {', '.join(AUGMENTATIONS)})")
        if self.kind == "standard_aug" and self.augment == []:
            raise ConfigError(f"{where}: a standard_aug arm needs at least one augmentation")
        if self.synthetic_set:  # absolute, so the config names the same file from any working directory
            object.__setattr__(self, "synthetic_set", str(Path(self.synthetic_set).expanduser().resolve()))


@dataclass(frozen=True)
class StudyConfig(Config):
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    train_fraction: float = option(0.1, label="Real training fraction", min=0, max=1, min_exclusive=True,
                                   help="share of the real training split each seed trains on")
    seeds: list[int] = option(factory=lambda: [0, 1, 2], label="Seeds",
                              help="one run per arm and seed; the seed also picks the real subset")
    arms: list[ArmConfig] = field(default_factory=lambda: [ArmConfig("real only")])
    train: TrainConfig = field(default_factory=TrainConfig)
    primary_metric: str = option("balanced_accuracy", label="Primary metric", choices=METRICS,
                                 help="the test metric the verdicts speak of")
    preset: str = option("", label="Preset", choices=("", *PRESETS), help="the preset it started from, if any")

    def validate(self) -> None:
        if not self.arms:
            raise ConfigError("StudyConfig.arms: a study needs at least one arm")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ConfigError(f"StudyConfig.arms: arm names must be unique; got {names}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ConfigError(f"StudyConfig.seeds: give distinct seeds ≥ 0; got {self.seeds}")

    @property
    def baseline(self) -> ArmConfig:
        """The arm every other arm is compared with: the first real-only arm, else the first arm."""
        return next((a for a in self.arms if a.kind == "real"), self.arms[0])


@dataclass(frozen=True)
class ArmRunConfig(Config):
    """One (arm, seed) of a study: everything a study-arm run needs, so it reproduces from its config alone."""
    arm: ArmConfig
    seed: int = option(0, min=0)
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    train_fraction: float = option(0.1, min=0, max=1, min_exclusive=True)
    train: TrainConfig = field(default_factory=TrainConfig)


def synthetic_arms(paths: list[str]) -> list[ArmConfig]:
    """One "real + <set>" arm per synthetic set path."""
    return [ArmConfig(f"real + {_set_label(p)}", "synthetic", str(p)) for p in paths]


def preset(name: str, synthetic_sets: list[str] = (), dataset: DatasetSpec | dict | None = None) -> StudyConfig:
    """`quick`: 10% of the data, 400 steps, real vs real + each synthetic set, 3 seeds — minutes
    on a laptop CPU. `paper`: the full training split for about 100 epochs' worth of steps at
    batch 128 (MedMNIST's protocol), with a standard-augmentation arm as a second reference."""
    dataset = dataset or DatasetSpec()
    if name == "quick":
        return StudyConfig(dataset=dataset, train_fraction=0.1, seeds=[0, 1, 2],
                           arms=[ArmConfig("real only"), *synthetic_arms(synthetic_sets)],
                           train=TrainConfig(steps=400, batch_size=64, eval_every=100), preset="quick")
    if name == "paper":
        return StudyConfig(dataset=dataset, train_fraction=1.0, seeds=[0, 1, 2],
                           arms=[ArmConfig("real only"), ArmConfig("real + standard aug", "standard_aug"),
                                 *synthetic_arms(synthetic_sets)],
                           train=TrainConfig(steps=5500, batch_size=128, lr=1e-3, eval_every=500), preset="paper")
    raise ConfigError(f"Unknown study preset '{name}' (choose {' or '.join(PRESETS)})")


def _set_label(path: str) -> str:
    path = Path(path)
    return f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "artifacts" else path.stem


def arm_runs(study: StudyConfig) -> dict[str, tuple[str, dict]]:
    """The study's study-arm jobs, "arm|seed" -> (run name, config); seed-major, so pairs complete early."""
    return {f"{arm.name}|{seed}": (f"{arm.name}-s{seed}", ArmRunConfig(
        arm=arm, seed=seed, dataset=study.dataset, train_fraction=study.train_fraction, train=study.train).to_dict())
        for seed in study.seeds for arm in study.arms}


# --- one (arm, seed) ----------------------------------------------------------------------------

def fingerprints(images: np.ndarray) -> np.ndarray:
    """A 64-bit content hash per image: identical pixels, identical fingerprint."""
    return np.array([int.from_bytes(hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=8).digest(),
                                    "little") for im in images], dtype=np.uint64)


def _digest(prints: np.ndarray) -> str:
    """One hash for a set of images, independent of their order."""
    return hashlib.blake2b(np.sort(prints).tobytes(), digest_size=12).hexdigest()


def load_synthetic(path: str, reference: ImageSet) -> ImageSet:
    """A synthetic set checked against the dataset it is meant to augment."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"synthetic set not found: {path}")
    synthetic = load_set(path)
    name = Path(path).name
    if synthetic.images.shape[1:] != reference.images.shape[1:]:
        raise ValueError(f"{name}: images are {synthetic.images.shape[1:]} (H×W×C) but the dataset's are "
                         f"{reference.images.shape[1:]}")
    if len(synthetic) == 0:
        raise ValueError(f"{name} holds no images")
    if synthetic.labels.min() < 0 or synthetic.labels.max() >= reference.num_classes:
        raise ValueError(f"{name}: labels outside 0..{reference.num_classes - 1}")
    return synthetic


def check_synthetic_sets(study: StudyConfig, reference: ImageSet) -> None:
    """Load every arm's synthetic set once: a bad file fails the study now, by name, not after an hour."""
    for arm in study.arms:
        if arm.synthetic_set:
            load_synthetic(arm.synthetic_set, reference)


def training_set(arm: ArmConfig, real: ImageSet, seed: int) -> tuple[ImageSet, np.ndarray]:
    """The arm's training images and a bool per image: True where it is synthetic."""
    if arm.kind not in SYNTHETIC_KINDS:
        return real, np.zeros(len(real), dtype=bool)
    synthetic = load_synthetic(arm.synthetic_set, real)
    rng = np.random.default_rng([seed, 1])
    if arm.mix == "balance":
        target = real.class_counts().max()
        pick = []
        for label, have in enumerate(real.class_counts()):
            pool = np.flatnonzero(synthetic.labels == label)
            want = min(len(pool), target - have) if arm.kind == "synthetic" else min(len(pool), target)
            pick.append(rng.choice(pool, size=max(0, want), replace=False))
        pick = np.sort(np.concatenate(pick)).astype(np.int64)
    else:
        want = min(len(synthetic), max(1, round(arm.ratio * len(real))))
        pick = np.sort(rng.choice(len(synthetic), size=want, replace=False))
    chosen = synthetic.take(pick)
    if arm.kind == "synthetic_only":
        return ImageSet(chosen.images, chosen.labels, real.class_names, "train", chosen.source), \
            np.ones(len(chosen), dtype=bool)
    images = np.concatenate([real.images, chosen.images])
    labels = np.concatenate([real.labels, chosen.labels])
    is_synthetic = np.concatenate([np.zeros(len(real), bool), np.ones(len(chosen), bool)])
    return ImageSet(images, labels, real.class_names, "train", f"{real.source}+{chosen.source}"), is_synthetic


def standard_augment(arm: ArmConfig, dataset_name: str) -> Augment | None:
    """A standard-augmentation arm's albumentations pipeline as a loop callback, else None."""
    if arm.kind != "standard_aug":
        return None
    names = default_pipeline(dataset_name) if arm.augment is None else arm.augment
    pipeline = build_pipeline(names, strength=arm.augment_strength, p=arm.augment_p)
    return lambda images, seed: apply(pipeline, images, seed)


@dataclass
class ArmOutcome:
    """What one (arm, seed) produced; lab/kinds/study.py writes each part to its file."""
    trained: TrainResult  # the selected classifier (best.pt) and its training record
    result: dict  # result.json: test and validation metrics, steps, history
    composition: dict  # composition.json: image counts per split, the real subset's digest
    seen: dict[str, np.ndarray]  # data_seen.npz: fingerprints of the images drawn, validated and tested on


def train_arm(config: ArmRunConfig, hooks: Hooks = NO_HOOKS) -> ArmOutcome:
    """Train one arm on one seed (resumable through `hooks.checkpoints`) and test it once."""
    arm, seed = config.arm, config.seed
    data = load_dataset(config.dataset)
    real = data.train.stratified_subset(config.train_fraction, seed)
    train, is_synthetic = training_set(arm, real, seed)
    val, test = data.val, data.test
    hooks.event(type="stage", stage="train", train_images=len(train), synthetic=int(is_synthetic.sum()))
    trained = train_classifier(train.images, train.labels, val.images, val.labels, data.train.num_classes,
                               config.train, seed=seed, augment=standard_augment(arm, config.dataset.name),
                               hooks=hooks)
    hooks.progress(trained.steps, config.train.steps, message="testing", force=True)
    metrics = evaluate(trained.model, test.images, test.labels)

    drawn = trained.drawn
    seen = {"train": fingerprints(train.images[drawn]), "train_synthetic": is_synthetic[drawn],
            "val": fingerprints(val.images), "test": fingerprints(test.images)}
    composition = {
        "train": {"images": len(train), "real": int((~is_synthetic).sum()), "synthetic": int(is_synthetic.sum()),
                  "drawn": int(drawn.sum()), "drawn_synthetic": int((drawn & is_synthetic).sum()),
                  "real_subset": _digest(fingerprints(real.images)),
                  "class_counts": train.class_counts().tolist()},
        "val": {"images": len(val), "synthetic": 0, "class_counts": val.class_counts().tolist()},
        "test": {"images": len(test), "synthetic": 0, "class_counts": test.class_counts().tolist()},
    }
    result = {"arm": arm.name, "kind": arm.kind, "seed": seed, "steps": trained.steps,
              "images_seen": trained.images_seen, "best_step": trained.best_step,
              "train_seconds": round(trained.seconds, 2), "test": metrics,
              "val": {k: trained.best_val[k] for k in METRICS}, "history": trained.history}
    return ArmOutcome(trained, result, composition, seen)


# --- the summary: every arm over the seeds ------------------------------------------------------

def _comparison(d: dict) -> PairedComparison:
    return PairedComparison(Estimate.from_dict(d), float(d["p_value"]))


@dataclass
class ArmSummary:
    """One arm over the seeds on the real test split; scores are fractions in [0, 1]."""
    arm: str
    kind: str
    synthetic_set: str | None
    metrics: dict[str, Estimate]  # METRICS -> mean with its 95% t-interval over seeds
    per_class_recall: list[float]  # mean over seeds, one per class
    confusion: list[list[int]]  # summed over seeds, rows = truth
    steps: list[int]  # distinct optimizer-step counts of its runs: one value when the budget was equal
    seeds: list[int]
    verdict: str = ""
    # The paired comparison with the baseline (arm − baseline, METRICS -> delta); empty for the baseline.
    vs_baseline: dict[str, PairedComparison] = field(default_factory=dict)
    per_class_recall_delta: list[float] | None = None  # recall − the baseline's, per class

    def to_dict(self) -> dict:
        d = {"arm": self.arm, "kind": self.kind, "synthetic_set": self.synthetic_set,
             "metrics": {m: e.to_dict() for m, e in self.metrics.items()},
             "per_class_recall": self.per_class_recall, "confusion": self.confusion, "steps": self.steps,
             "seeds": self.seeds}
        if self.vs_baseline:
            d["vs_baseline"] = {m: c.to_dict() for m, c in self.vs_baseline.items()}
            d["per_class_recall_delta"] = self.per_class_recall_delta
        d["verdict"] = self.verdict
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArmSummary":
        return cls(arm=d["arm"], kind=d["kind"], synthetic_set=d["synthetic_set"],
                   metrics={m: Estimate.from_dict(e) for m, e in d["metrics"].items()},
                   per_class_recall=list(d["per_class_recall"]), confusion=d["confusion"], steps=list(d["steps"]),
                   seeds=list(d["seeds"]), verdict=d["verdict"],
                   vs_baseline={m: _comparison(c) for m, c in d.get("vs_baseline", {}).items()},
                   per_class_recall_delta=d.get("per_class_recall_delta"))


@dataclass
class StudySummary:
    """summary.json: what a finished study found, arm by arm (the baseline first among equals)."""
    dataset: DatasetSpec
    train_fraction: float
    seeds: list[int]
    primary_metric: str  # one of METRICS
    baseline: str  # the name of the arm the others are compared with
    class_names: list[str]
    study_run: str | None  # the study's run directory
    arms: list[ArmSummary]

    def gains(self) -> list[tuple[ArmSummary, PairedComparison]]:
        """Each arm that trained on a synthetic set, with its gain over the baseline on the primary metric."""
        return [(arm, arm.vs_baseline[self.primary_metric]) for arm in self.arms
                if arm.synthetic_set and self.primary_metric in arm.vs_baseline]

    def to_dict(self) -> dict:
        return {"dataset": self.dataset.to_dict(), "train_fraction": self.train_fraction, "seeds": self.seeds,
                "primary_metric": self.primary_metric, "baseline": self.baseline, "class_names": self.class_names,
                "study_run": self.study_run, "arms": [a.to_dict() for a in self.arms]}

    @classmethod
    def from_dict(cls, d: dict) -> "StudySummary":
        return cls(dataset=DatasetSpec.from_dict(d["dataset"]), train_fraction=float(d["train_fraction"]),
                   seeds=list(d["seeds"]), primary_metric=d["primary_metric"], baseline=d["baseline"],
                   class_names=list(d["class_names"]), study_run=d["study_run"],
                   arms=[ArmSummary.from_dict(a) for a in d["arms"]])


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
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{path} is not a study summary: {type(e).__name__}: {e}") from None


def summarize(study: StudyConfig, results: list[dict], class_names: list[str],
              study_run: str | None = None) -> StudySummary:
    """Per arm, mean ± 95% t-interval per metric over its seeds (`results`: the arms' result.json)
    and the paired comparison with the baseline over the seeds both arms ran."""
    by_arm = {arm.name: {r["seed"]: r for r in results if r["arm"] == arm.name} for arm in study.arms}
    base = study.baseline
    base_runs = by_arm[base.name]
    arms = []
    for arm in study.arms:
        runs = by_arm[arm.name]
        seeds = [s for s in study.seeds if s in runs]
        summary = ArmSummary(
            arm=arm.name, kind=arm.kind, synthetic_set=arm.synthetic_set,
            metrics={m: t_interval([runs[s]["test"][m] for s in seeds]) for m in METRICS},
            per_class_recall=np.mean([runs[s]["test"]["per_class_recall"] for s in seeds], 0).tolist(),
            confusion=np.sum([runs[s]["test"]["confusion"] for s in seeds], 0).tolist(),
            steps=sorted({runs[s]["steps"] for s in seeds}), seeds=seeds)
        if arm.name != base.name:
            paired = [s for s in seeds if s in base_runs]
            summary.vs_baseline = {m: paired_comparison([runs[s]["test"][m] for s in paired],
                                                        [base_runs[s]["test"][m] for s in paired]) for m in METRICS}
            base_recall = np.mean([base_runs[s]["test"]["per_class_recall"] for s in paired], 0)
            summary.per_class_recall_delta = (np.array(summary.per_class_recall) - base_recall).tolist()
        summary.verdict = verdict(summary, study.primary_metric, base.name)
        arms.append(summary)
    return StudySummary(dataset=study.dataset, train_fraction=study.train_fraction, seeds=list(study.seeds),
                        primary_metric=study.primary_metric, baseline=base.name, class_names=list(class_names),
                        study_run=study_run, arms=arms)


def verdict(arm: ArmSummary, metric: str, baseline: str) -> str:
    """One sentence a reader can act on: the gain in points with its interval, or no detectable difference."""
    label = METRIC_LABELS[metric].lower()
    if not arm.vs_baseline:
        m = arm.metrics[metric]
        interval = f", 95% interval [{100 * m.lo:.1f}, {100 * m.hi:.1f}]" if np.isfinite(m.lo) else ""
        return f"Baseline: {label} {100 * m.mean:.1f}%{interval} over {m.n} seeds."
    comparison = arm.vs_baseline[metric]
    d = comparison.delta
    if d.n < 2 or not np.isfinite(d.lo):
        return (f"{100 * d.mean:+.1f} points {label} vs {baseline} from {d.n} seed(s): "
                f"too few seeds for an interval; no conclusion.")
    text = (f"{100 * d.mean:+.1f} points {label} vs {baseline}, 95% interval "
            f"[{100 * d.lo:+.1f}, {100 * d.hi:+.1f}] over {d.n} paired seeds")
    if comparison.significant:
        direction = "better" if d.mean > 0 else "worse"
        return f"{text}: {direction} than {baseline} (the interval excludes zero)."
    return f"No detectable difference: {text} (the interval includes zero)."


# --- reading finished studies (the page, Grad-CAM) ----------------------------------------------

def study_results(study_run: Run) -> list[dict]:
    """result.json of every finished arm run of a study, in the order they ran."""
    results = [read_json(child.artifacts / "result.json") for child in read_children(study_run).values()]
    return [r for r in results if r]


def arm_model(arm_run: Run):
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
