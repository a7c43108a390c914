"""The augmentation study: does adding a generator's images make the classifier better?

A study trains the same EfficientNet once per (arm, seed) and compares the arms on the real
test split. It is fair by construction:
- every arm takes the same number of optimizer steps (`TrainConfig.steps`);
- for a given seed every arm starts from the same real subset (`stratified_subset(fraction, seed)`);
- synthetic images enter training data only; model selection uses the real validation split;
- the test split is evaluated once, with the selected weights.

Each (arm, seed) is a "study-arm" run with its own directory, events and checkpoint, queued as a
child of the study (lab/children.py: free worker slots take them, the study runs the rest in its
own process). Each arm job writes
what it actually trained and evaluated on (`composition.json`, `data_seen.npz`), so fairness
is checked on the data, not assumed. The study then aggregates over seeds (mean with a
Student-t 95% interval), compares each arm with the baseline seed by seed (paired t), and
writes `summary.json` (the leaderboard's contract), `report.csv` and `report.html`.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from classifier.evaluate import METRIC_LABELS, METRICS, evaluate
from classifier.train import TrainConfig, train_classifier
from data.datasets import DatasetSpec, load_dataset
from data.imageset import ImageSet
from data.synthetic import load_set
from lab.children import create_children, read_children, run_children
from lab.runs import Run, atomic_write_json, read_json
from metrics.stats import paired_comparison, t_interval

ARM_KINDS = ("real", "standard_aug", "synthetic", "synthetic_only")
MIX_MODES = ("ratio", "balance")


@dataclass
class ArmConfig:
    name: str
    kind: str = "real"  # one of ARM_KINDS
    synthetic_set: str | None = None  # absolute path of a synthetic set .npz (synthetic arms)
    mix: str = "ratio"  # "ratio": ratio × (real count) synthetic images; "balance": top up every class
    ratio: float = 1.0
    augment: list[str] = field(default_factory=lambda: ["hflip", "vflip", "rotate", "brightness_contrast"])
    augment_strength: float = 1.0
    augment_p: float = 0.5

    def __post_init__(self):
        if self.kind not in ARM_KINDS:
            raise ValueError(f"arm '{self.name}': kind must be one of {ARM_KINDS}, got '{self.kind}'")
        if self.mix not in MIX_MODES:
            raise ValueError(f"arm '{self.name}': mix must be one of {MIX_MODES}, got '{self.mix}'")
        if self.kind in ("synthetic", "synthetic_only"):
            if not self.synthetic_set:
                raise ValueError(f"arm '{self.name}' ({self.kind}) needs a synthetic_set")
            self.synthetic_set = str(Path(self.synthetic_set).expanduser().resolve())
        else:
            self.synthetic_set = None

    @classmethod
    def from_dict(cls, d: dict) -> "ArmConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class StudyConfig:
    dataset: dict = field(default_factory=lambda: DatasetSpec().to_dict())
    train_fraction: float = 0.1  # share of the real training split each seed trains on
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    arms: list[ArmConfig] = field(default_factory=lambda: [ArmConfig("real only")])
    train: TrainConfig = field(default_factory=TrainConfig)
    primary_metric: str = "balanced_accuracy"
    preset: str = ""

    def __post_init__(self):
        self.dataset = DatasetSpec.from_dict(self.dataset).to_dict()  # every field, for reproducibility
        self.arms = [a if isinstance(a, ArmConfig) else ArmConfig.from_dict(a) for a in self.arms]
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)
        if not self.arms:
            raise ValueError("a study needs at least one arm")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        if self.primary_metric not in METRICS:
            raise ValueError(f"primary_metric must be one of {METRICS}")
        if not 0 < self.train_fraction <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction}")

    @property
    def baseline(self) -> ArmConfig:
        """The arm every other arm is compared with: the first real-only arm, else the first arm."""
        return next((a for a in self.arms if a.kind == "real"), self.arms[0])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StudyConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def preset(name: str, synthetic_sets: list[str] = (), dataset: dict | None = None) -> StudyConfig:
    """`quick`: 10% of the data, 400 steps, real vs real + each synthetic set, 3 seeds — minutes
    on a laptop CPU. `paper`: the full training split for about 100 epochs' worth of steps at
    batch 128 (MedMNIST's protocol), with a standard-augmentation arm as a second reference."""
    synthetic_arms = [ArmConfig(f"real + {_set_label(p)}", "synthetic", p) for p in synthetic_sets]
    if name == "quick":
        return StudyConfig(dataset=dataset or DatasetSpec().to_dict(), train_fraction=0.1, seeds=[0, 1, 2],
                           arms=[ArmConfig("real only"), *synthetic_arms],
                           train=TrainConfig(steps=400, batch_size=64, eval_every=100), preset="quick")
    if name == "paper":
        return StudyConfig(dataset=dataset or DatasetSpec().to_dict(), train_fraction=1.0, seeds=[0, 1, 2],
                           arms=[ArmConfig("real only"), ArmConfig("real + standard aug", "standard_aug"),
                                 *synthetic_arms],
                           train=TrainConfig(steps=5500, batch_size=128, lr=1e-3, eval_every=500), preset="paper")
    raise ValueError(f"Unknown study preset '{name}' (choose quick or paper)")


PRESETS = ("quick", "paper")


def _set_label(path: str) -> str:
    path = Path(path)
    return f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "artifacts" else path.stem


# --- one (arm, seed): the study-arm job ------------------------------------------------------

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


def training_set(arm: ArmConfig, real: ImageSet, seed: int) -> tuple[ImageSet, np.ndarray]:
    """The arm's training images and a bool per image: True where it is synthetic."""
    if arm.kind in ("real", "standard_aug"):
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


def standard_augment(arm: ArmConfig):
    """The albumentations pipeline of a standard-augmentation arm as a loop callback, else None."""
    if arm.kind != "standard_aug":
        return None
    from data.augment import apply, build_pipeline

    pipeline = build_pipeline(arm.augment, strength=arm.augment_strength, p=arm.augment_p)
    return lambda images, seed: apply(pipeline, images, seed)


def run_arm_job(run: Run) -> None:
    """Train and test one arm on one seed; write result.json, composition.json, data_seen.npz, best.pt."""
    config = run.config
    arm, seed = ArmConfig.from_dict(config["arm"]), int(config["seed"])
    train_config = TrainConfig.from_dict(config["train"])
    data = load_dataset(config["dataset"])
    real = data.train.stratified_subset(float(config["train_fraction"]), seed)
    train, is_synthetic = training_set(arm, real, seed)
    val, test = data.val, data.test
    run.log_event(type="stage", stage="train", train_images=len(train), synthetic=int(is_synthetic.sum()))

    result = train_classifier(train.images, train.labels, val.images, val.labels, data.train.num_classes,
                              train_config, seed=seed, augment=standard_augment(arm), run=run)
    run.progress(result.steps, train_config.steps, message="testing", force=True)
    metrics = evaluate(result.model, test.images, test.labels)

    drawn = result.drawn
    np.savez_compressed(run.artifacts / "data_seen.npz",
                        train=fingerprints(train.images[drawn]), train_synthetic=is_synthetic[drawn],
                        val=fingerprints(val.images), test=fingerprints(test.images))
    atomic_write_json(run.artifacts / "composition.json", {
        "train": {"images": len(train), "real": int((~is_synthetic).sum()), "synthetic": int(is_synthetic.sum()),
                  "drawn": int(drawn.sum()), "drawn_synthetic": int((drawn & is_synthetic).sum()),
                  "real_subset": _digest(fingerprints(real.images)),
                  "class_counts": train.class_counts().tolist()},
        "val": {"images": len(val), "synthetic": 0, "class_counts": val.class_counts().tolist()},
        "test": {"images": len(test), "synthetic": 0, "class_counts": test.class_counts().tolist()},
    })
    torch.save(result.model.state_dict(), run.artifacts / "best.pt")
    atomic_write_json(run.artifacts / "result.json", {
        "arm": arm.name, "kind": arm.kind, "seed": seed, "steps": result.steps, "images_seen": result.images_seen,
        "best_step": result.best_step, "train_seconds": round(result.seconds, 2),
        "test": metrics, "val": {k: result.best_val[k] for k in METRICS}, "history": result.history,
    })
    (run.checkpoints / "last.pt").unlink(missing_ok=True)  # the result is final; resume state is not needed
    run.progress(result.steps, train_config.steps, message="done", force=True)


# --- the study job: run every (arm, seed), then aggregate --------------------------------------

def arm_config(study: StudyConfig, arm: ArmConfig, seed: int, parent: Run) -> dict:
    """Everything an arm job needs, so its run can be reproduced from its config.json alone."""
    return {"study": str(parent.path), "arm": asdict(arm), "seed": seed, "dataset": study.dataset,
            "train_fraction": study.train_fraction, "train": study.train.to_dict()}


def run_study_job(run: Run) -> None:
    study = StudyConfig.from_dict(run.config)
    data = load_dataset(study.dataset)
    for arm in study.arms:  # fail now, with the file's name, not after an hour of training
        if arm.synthetic_set:
            load_synthetic(arm.synthetic_set, data.train)
    plan = {f"{arm.name}|{seed}": (f"{arm.name}-s{seed}", arm_config(study, arm, seed, run))
            for seed in study.seeds for arm in study.arms}  # seed-major: pairs complete early
    children = create_children(run, "study-arm", plan)
    run_children(run, children, study.train.steps, describe=lambda key: key.replace("|", " · seed "))
    run.progress(len(plan) * study.train.steps, len(plan) * study.train.steps, message="aggregating", force=True)
    results = [read_json(child.artifacts / "result.json") for child in children.values()]
    summary = summarize(study, results, run)
    from lab.study_report import write_report

    write_report(run, summary, results)


# --- aggregation ------------------------------------------------------------------------------

def summarize(study: StudyConfig, results: list[dict], run: Run | None = None) -> dict:
    """summary.json: per arm, mean ± 95% t-interval per metric and the paired comparison with the
    baseline over the seeds both arms ran."""
    by_arm = {arm.name: {r["seed"]: r for r in results if r["arm"] == arm.name} for arm in study.arms}
    base = study.baseline
    base_runs = by_arm[base.name]
    arms = []
    for arm in study.arms:
        runs = by_arm[arm.name]
        seeds = [s for s in study.seeds if s in runs]
        entry = {"arm": arm.name, "kind": arm.kind, "synthetic_set": arm.synthetic_set,
                 "metrics": {m: t_interval([runs[s]["test"][m] for s in seeds]).to_dict() for m in METRICS},
                 "per_class_recall": np.mean([runs[s]["test"]["per_class_recall"] for s in seeds], 0).tolist(),
                 "confusion": np.sum([runs[s]["test"]["confusion"] for s in seeds], 0).tolist(),
                 "steps": sorted({runs[s]["steps"] for s in seeds}), "seeds": seeds}
        if arm.name != base.name:
            paired = [s for s in seeds if s in base_runs]
            entry["vs_baseline"] = {
                m: paired_comparison([runs[s]["test"][m] for s in paired],
                                     [base_runs[s]["test"][m] for s in paired]).to_dict() for m in METRICS}
            entry["per_class_recall_delta"] = (np.array(entry["per_class_recall"]) -
                                               np.mean([base_runs[s]["test"]["per_class_recall"] for s in paired],
                                                       0)).tolist()
        entry["verdict"] = verdict(entry, study.primary_metric, base.name)
        arms.append(entry)
    return {"dataset": study.dataset, "train_fraction": study.train_fraction, "seeds": list(study.seeds),
            "primary_metric": study.primary_metric, "baseline": base.name,
            "class_names": load_dataset(study.dataset).class_names,
            "study_run": str(run.path) if run is not None else None, "arms": arms}


def verdict(entry: dict, metric: str, baseline: str) -> str:
    """One sentence a reader can act on: the gain in points with its interval, or no detectable difference."""
    label = METRIC_LABELS[metric].lower()
    if "vs_baseline" not in entry:
        m = entry["metrics"][metric]
        interval = f", 95% interval [{100 * m['lo']:.1f}, {100 * m['hi']:.1f}]" if np.isfinite(m["lo"]) else ""
        return f"Baseline: {label} {100 * m['mean']:.1f}%{interval} over {m['n']} seeds."
    d = entry["vs_baseline"][metric]
    n = d["n"]
    if n < 2 or not np.isfinite(d["lo"]):
        return (f"{100 * d['mean']:+.1f} points {label} vs {baseline} from {n} seed(s): "
                f"too few seeds for an interval; no conclusion.")
    text = (f"{100 * d['mean']:+.1f} points {label} vs {baseline}, 95% interval "
            f"[{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] over {n} paired seeds")
    if d["significant"]:
        direction = "better" if d["mean"] > 0 else "worse"
        return f"{text}: {direction} than {baseline} (the interval excludes zero)."
    return f"No detectable difference: {text} (the interval includes zero)."


# --- reading finished studies (the page, the leaderboard, Grad-CAM) ----------------------------

def study_children(study_run: Run) -> dict[str, Run]:
    """The study's arm runs by "arm|seed", in the order they ran."""
    return read_children(study_run)


def study_results(study_run: Run) -> list[dict]:
    """result.json of every finished arm run of a study."""
    results = [read_json(child.artifacts / "result.json") for child in study_children(study_run).values()]
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
