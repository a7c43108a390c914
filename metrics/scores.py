"""What a score job reports, as typed results, and the files they are saved as.

`Scores` is a job's `artifacts/scores.json`: the dataset and config it scored with, the two
feature spaces of the distribution metrics (`InceptionSummary`: the standard TF-FID Inception-v3
and how many images it saw; `EncoderSummary`: the lab's domain encoder, its validation balanced
accuracy and, when it is not clearly above chance, why its numbers are withheld), the facts of
each piqa metric, and one `SetScores` per synthetic set. `SetScores` holds, per pairing strategy,
each piqa metric as a `MetricScore` (mean, bootstrap 95% interval and number of pairs, overall
and per class); one `DistributionScores` per feature space and real reference (the training
split, and a sample of it in the set's class mix), each naming its space; and the memorization
check. `to_dict`/`from_dict` map each class to the JSON on disk, `Scores.load` reads a file (a
malformed one is an error naming it), and `Scores.to_csv` flattens everything into one row per
set × pairing × metric × class, distribution rows naming their feature space (and, in the
encoder's, its validation balanced accuracy).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from data.files import atomic_write_json, csv_text
from data.synthetic import set_id
from metrics.distribution import DISTRIBUTION_METRICS
from metrics.quality import METRICS, QualityMetric
from metrics.stats import Estimate


@dataclass
class MetricScore(Estimate):
    """One metric over all pairs of a set (mean, interval, n) and per class name."""
    per_class: dict[str, Estimate] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "MetricScore":
        return cls(**asdict(Estimate.from_dict(d)),
                   per_class={name: Estimate.from_dict(e) for name, e in d["per_class"].items()})


@dataclass
class PairingScores:
    """Every piqa metric of a set under one pairing strategy ("nearest" or "random")."""
    mean_pixel_distance: float  # RMS pixel distance of the pairs, [0, 1]
    metrics: dict[str, MetricScore]  # metric key -> score

    @property
    def pairs(self) -> int:
        """Number of pairs scored (of the first metric: a metric skipped as not applicable counts 0)."""
        return next(iter(self.metrics.values())).n if self.metrics else 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PairingScores":
        return cls(float(d["mean_pixel_distance"]),
                   {key: MetricScore.from_dict(m) for key, m in d["metrics"].items()})


INCEPTION, ENCODER = "inception", "encoder"  # the feature spaces (DistributionScores.space)
TRAIN_SPLIT, CLASS_MATCHED = "train split", "class-matched"  # the real references (DistributionScores.reference)


@dataclass
class DistributionScores:
    """The distribution metrics of one set against one real reference, in one feature space."""
    fid: float
    kid: float
    kid_std: float  # spread of KID over random subsets
    precision: float
    recall: float
    density: float
    coverage: float
    n_real: int
    n_synthetic: int
    space: str  # INCEPTION or ENCODER
    reference: str  # TRAIN_SPLIT (the whole split, or its capped sample for Inception) or CLASS_MATCHED
    feature_space: str  # the space's full name, e.g. "inception-v3 (TF-FID pool3)"

    def value(self, key: str) -> float:
        """A metric of `DISTRIBUTION_METRICS` by key."""
        return getattr(self, key)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DistributionScores":
        return cls(**{name: d[name] for name in cls.__dataclass_fields__})


@dataclass
class ClosePair:
    """A synthetic image and its nearest training image (the memorization gallery)."""
    synthetic_index: int
    train_index: int
    distance: float  # RMS pixel distance, [0, 1]
    suspected: bool


@dataclass
class MemorizationScores:
    threshold: float  # RMS distance below which a synthetic image is a suspected copy
    quantile: float  # of held-out real distances that set the threshold
    suspected_fraction: Estimate
    suspected_count: int
    expected_fraction: float  # what a generator of new images would flag (= quantile)
    median_distance: float  # synthetic images to their nearest training image
    heldout_median_distance: float  # real held-out images to their nearest training image
    per_class: dict[str, Estimate]  # suspected fraction per class name
    closest: list[ClosePair]  # closest first

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MemorizationScores":
        return cls(float(d["threshold"]), float(d["quantile"]), Estimate.from_dict(d["suspected_fraction"]),
                   int(d["suspected_count"]), float(d["expected_fraction"]), float(d["median_distance"]),
                   float(d["heldout_median_distance"]),
                   {name: Estimate.from_dict(e) for name, e in d["per_class"].items()},
                   [ClosePair(**c) for c in d["closest"]])


@dataclass
class SetScores:
    """Everything measured on one synthetic set; the identity fields come from its file and metadata."""
    count: int
    class_counts: list[int]
    applicability: dict[str, str]  # metric key -> "native", "upsampled a→b px" or "not applicable …"
    pairings: dict[str, PairingScores]
    memorization: MemorizationScores
    distribution: list[DistributionScores] = field(default_factory=list)  # per feature space and reference
    path: str = ""  # the set's npz
    name: str = ""
    generator: str = "?"
    run_id: str | None = None  # the run that made the set
    train_seconds: float | None = None  # its generator's training time
    seconds: float = 0.0  # time spent scoring it
    gallery: str = ""  # memorization gallery PNG in the score run's artifacts; "" for none

    @property
    def set_id(self) -> str:
        """The set's id ("<run id>/<set name>", data.synthetic.set_id): what joins its scores to studies,
        unchanged when the runs folder moves."""
        return set_id(self.path) if self.path else self.name

    def distribution_in(self, space: str, reference: str = TRAIN_SPLIT) -> DistributionScores | None:
        """The distribution metrics in feature space `space` against `reference`; None when not measured."""
        return next((d for d in self.distribution if d.space == space and d.reference == reference), None)

    def to_dict(self) -> dict:
        return {"path": self.path, "name": self.name, "generator": self.generator, "run_id": self.run_id,
                "train_seconds": self.train_seconds, "count": self.count, "class_counts": self.class_counts,
                "applicability": self.applicability,
                "pairings": {key: p.to_dict() for key, p in self.pairings.items()},
                "distribution": [d.to_dict() for d in self.distribution],
                "memorization": self.memorization.to_dict(), "seconds": self.seconds, "gallery": self.gallery}

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "SetScores":
        """The set's scores in `path`; a missing, unreadable or malformed file is a ValueError naming it."""
        return _load(path, cls.from_dict)

    @classmethod
    def from_dict(cls, d: dict) -> "SetScores":
        return cls(int(d["count"]), list(d["class_counts"]), dict(d["applicability"]),
                   {key: PairingScores.from_dict(p) for key, p in d["pairings"].items()},
                   MemorizationScores.from_dict(d["memorization"]),
                   [DistributionScores.from_dict(block) for block in d["distribution"]],
                   d.get("path", ""), d.get("name", ""), d.get("generator", "?"), d.get("run_id"),
                   d.get("train_seconds"), d.get("seconds", 0.0), d.get("gallery", ""))


@dataclass
class EncoderSummary:
    """The lab encoder of a score job: which one, how well it learned, whether its numbers are reported."""
    name: str  # its feature space's full name
    val_balanced_accuracy: float | None  # on the validation split; None without one
    chance: float | None  # balanced accuracy of guessing: 1 / classes
    p_value: float | None  # label-permutation test of the balanced accuracy against chance
    withheld: str  # why its metrics are not reported (metrics.encoder's rule); "" when they are
    info: dict  # what the encoder recorded: source, fingerprint, images, steps, seconds
    config: dict  # its EncoderConfig

    @property
    def accuracy_text(self) -> str:
        """ "val balanced acc 0.83, chance 0.50": printed next to every number the encoder produces."""
        if self.val_balanced_accuracy is None:
            return "val balanced acc unknown"
        return f"val balanced acc {self.val_balanced_accuracy:.2f}, chance {self.chance:.2f}"

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderSummary":
        return cls(**{name: d[name] for name in cls.__dataclass_fields__})


@dataclass
class InceptionSummary:
    """The Inception-v3 feature space of a score job and the images it saw."""
    feature_space: str
    protocol: str  # preprocessing, as metrics.inception states it
    real_images: int  # training images in the real reference (a stratified sample when the split is larger)
    train_images: int  # in the training split
    synthetic_cap: int  # each set's images beyond this are sampled down (seeded, stratified by class)
    seed: int  # of both samples
    device: str

    @property
    def sample_text(self) -> str:
        """ "real reference: 2000 of 7007 training images (stratified by class, seed 0); at most 1000 images per
        synthetic set" """
        real = (f"all {self.train_images}" if self.real_images == self.train_images
                else f"{self.real_images} of {self.train_images}")
        return (f"real reference: {real} training images (stratified by class, seed {self.seed}); "
                f"at most {self.synthetic_cap} images per synthetic set")

    @classmethod
    def from_dict(cls, d: dict) -> "InceptionSummary":
        return cls(**{name: d[name] for name in cls.__dataclass_fields__})


@dataclass
class MetricInfo:
    """The facts of a piqa metric as scores.json records them (so the file reads on its own)."""
    name: str
    arrow: str  # ↑ or ↓: which direction is better
    range: str
    meaning: str
    min_size: int

    @classmethod
    def of(cls, metric: QualityMetric) -> "MetricInfo":
        return cls(metric.name, metric.arrow, metric.range_text, metric.meaning, metric.min_size)


@dataclass
class Scores:
    """A score job's results: `artifacts/scores.json`."""
    dataset: dict  # DatasetSpec dict of the real data
    config: dict  # the ScoreConfig dict
    created: float  # Unix time
    inception: InceptionSummary | None  # None when Inception was skipped
    encoder: EncoderSummary | None  # None without distribution metrics
    metrics: dict[str, MetricInfo]
    sets: list[SetScores]
    # the work that depends on the real data alone and was taken from its dataset's cache, not done by
    # this job: "lab encoder", "Inception real reference"
    cached: list[str] = field(default_factory=list)

    @property
    def encoder_name(self) -> str | None:
        return None if self.encoder is None else self.encoder.name

    def feature_space_note(self, space: str) -> str:
        """What to print beside a number of `space`: the encoder's validation accuracy; nothing for Inception."""
        return self.encoder.accuracy_text if space == ENCODER and self.encoder is not None else ""

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "config": self.config, "created": self.created,
                "inception": None if self.inception is None else asdict(self.inception),
                "encoder": None if self.encoder is None else asdict(self.encoder),
                "metrics": {key: asdict(m) for key, m in self.metrics.items()},
                "sets": [s.to_dict() for s in self.sets], "cached": list(self.cached)}

    @classmethod
    def from_dict(cls, d: dict) -> "Scores":
        if "inception" not in d:
            raise ValueError("written by an older lab (before Inception and the encoder's accuracy check): "
                             "score the sets again")
        return cls(d["dataset"], d["config"], float(d["created"]),
                   InceptionSummary.from_dict(d["inception"]) if d["inception"] else None,
                   EncoderSummary.from_dict(d["encoder"]) if d["encoder"] else None,
                   {key: MetricInfo(**m) for key, m in d["metrics"].items()},
                   [SetScores.from_dict(s) for s in d["sets"]], [str(part) for part in d.get("cached", [])])

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Scores":
        """The scores in `path`; a missing, unreadable or malformed file is a ValueError naming it."""
        return _load(path, cls.from_dict)

    def table_rows(self) -> list[dict]:
        """Flat rows: set × pairing × metric × class ("all" first), then distribution and memorization.
        Distribution rows name their feature space and, in the encoder's, its validation accuracy; a
        withheld encoder leaves one row per set that says why."""
        rows = []
        for s in self.sets:
            base = {"set": s.name, "generator": s.generator, "path": s.path}
            for pairing, block in s.pairings.items():
                for key, score in block.metrics.items():
                    metric = METRICS[key]
                    for cls, e in [("all", score), *score.per_class.items()]:
                        rows.append(_row(base, pairing, metric.name, metric.arrow, cls, e.mean, e.lo, e.hi, e.n))
            for d in s.distribution:
                for key, metric in DISTRIBUTION_METRICS.items():
                    rows.append(_row(base, f"distribution, {d.reference}", metric.name, metric.arrow, "all",
                                     d.value(key), None, None, d.n_synthetic, d.feature_space,
                                     self.feature_space_note(d.space)))
            if self.encoder is not None and self.encoder.withheld:
                rows.append(_row(base, "distribution", "withheld", "", "all", None, None, None, s.count,
                                 self.encoder.name, self.encoder.withheld))
            memo = s.memorization
            for cls, e in [("all", memo.suspected_fraction), *memo.per_class.items()]:
                rows.append(_row(base, "memorization", "suspected copies", "↓", cls, e.mean, e.lo, e.hi, e.n))
        return rows

    def to_csv(self) -> str:
        return csv_text(self.table_rows())


def _row(base: dict, pairing: str, metric: str, direction: str, cls: str, mean: float, lo: float | None,
         hi: float | None, n: int, feature_space: str = "", encoder_accuracy: str = "") -> dict:
    """One CSV row; every row has the same columns."""
    return {**base, "pairing": pairing, "metric": metric, "direction": direction, "class": cls, "mean": mean,
            "lo": lo, "hi": hi, "n": n, "feature space": feature_space, "encoder accuracy": encoder_accuracy}


def _load(path: str | Path, build):
    """`build(json in path)`, with any failure reported as a ValueError that names the file."""
    path = Path(path)
    try:
        return build(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError,
            AttributeError) as e:
        raise ValueError(f"{path} is not a readable scores file: {type(e).__name__}: {e}") from None
