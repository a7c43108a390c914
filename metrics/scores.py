"""What a score job reports, as typed results, and the files they are saved as.

`Scores` is a job's `artifacts/scores.json`: the dataset and config it scored with, the encoder
of the distribution metrics, the facts of each piqa metric, and one `SetScores` per synthetic
set. `SetScores` holds, per pairing strategy, each piqa metric as a `MetricScore` (mean,
bootstrap 95% interval and number of pairs, overall and per class); the distribution metrics
against the whole training split and against a class-matched real sample; and the
memorization check. `to_dict`/`from_dict` map each class to the JSON on disk, `Scores.load`
reads a file (a malformed one is an error naming it), and `Scores.to_csv` flattens everything
into one row per set × pairing × metric × class.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from data.files import atomic_write_json, csv_text
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


@dataclass
class DistributionScores:
    """The distribution metrics of one set against one real reference, in one encoder's space."""
    fid: float
    kid: float
    kid_std: float  # spread of KID over random subsets
    precision: float
    recall: float
    density: float
    coverage: float
    n_real: int
    n_synthetic: int
    encoder: str  # name of the feature space

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
    distribution: DistributionScores | None = None  # against the whole training split
    distribution_class_matched: DistributionScores | None = None  # against real images in the set's class mix
    path: str = ""  # the set's npz
    name: str = ""
    generator: str = "?"
    run_id: str | None = None  # the run that made the set
    train_seconds: float | None = None  # its generator's training time
    seconds: float = 0.0  # time spent scoring it
    gallery: str = ""  # memorization gallery PNG in the score run's artifacts; "" for none

    def to_dict(self) -> dict:
        d = {"path": self.path, "name": self.name, "generator": self.generator, "run_id": self.run_id,
             "train_seconds": self.train_seconds, "count": self.count, "class_counts": self.class_counts,
             "applicability": self.applicability,
             "pairings": {key: p.to_dict() for key, p in self.pairings.items()}}
        for block in ("distribution", "distribution_class_matched"):
            if getattr(self, block) is not None:
                d[block] = getattr(self, block).to_dict()
        return {**d, "memorization": self.memorization.to_dict(), "seconds": self.seconds, "gallery": self.gallery}

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
                   _distribution(d.get("distribution")), _distribution(d.get("distribution_class_matched")),
                   d.get("path", ""), d.get("name", ""), d.get("generator", "?"), d.get("run_id"),
                   d.get("train_seconds"), d.get("seconds", 0.0), d.get("gallery", ""))


def _distribution(d: dict | None) -> DistributionScores | None:
    return DistributionScores.from_dict(d) if d else None


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
    encoder: dict | None  # name, info and config of the distribution metrics' encoder; None without them
    metrics: dict[str, MetricInfo]
    sets: list[SetScores]

    @property
    def encoder_name(self) -> str | None:
        return None if self.encoder is None else self.encoder["name"]

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "config": self.config, "created": self.created, "encoder": self.encoder,
                "metrics": {key: asdict(m) for key, m in self.metrics.items()},
                "sets": [s.to_dict() for s in self.sets]}

    @classmethod
    def from_dict(cls, d: dict) -> "Scores":
        return cls(d["dataset"], d["config"], float(d["created"]), d.get("encoder"),
                   {key: MetricInfo(**m) for key, m in d["metrics"].items()},
                   [SetScores.from_dict(s) for s in d["sets"]])

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Scores":
        """The scores in `path`; a missing, unreadable or malformed file is a ValueError naming it."""
        return _load(path, cls.from_dict)

    def table_rows(self) -> list[dict]:
        """Flat rows: set × pairing × metric × class ("all" first), then distribution and memorization."""
        rows = []
        for s in self.sets:
            base = {"set": s.name, "generator": s.generator, "path": s.path}
            for pairing, block in s.pairings.items():
                for key, score in block.metrics.items():
                    metric = METRICS[key]
                    for cls, e in [("all", score), *score.per_class.items()]:
                        rows.append({**base, "pairing": pairing, "metric": metric.name, "direction": metric.arrow,
                                     "class": cls, "mean": e.mean, "lo": e.lo, "hi": e.hi, "n": e.n})
            for block in ("distribution", "distribution_class_matched"):
                scores = getattr(s, block)
                if scores is None:
                    continue
                for key, metric in DISTRIBUTION_METRICS.items():
                    rows.append({**base, "pairing": block, "metric": metric.name, "direction": metric.arrow,
                                 "class": "all", "mean": scores.value(key), "lo": None, "hi": None, "n": s.count})
            memo = s.memorization
            for cls, e in [("all", memo.suspected_fraction), *memo.per_class.items()]:
                rows.append({**base, "pairing": "memorization", "metric": "suspected copies", "direction": "↓",
                             "class": cls, "mean": e.mean, "lo": e.lo, "hi": e.hi, "n": e.n})
        return rows

    def to_csv(self) -> str:
        return csv_text(self.table_rows())


def _load(path: str | Path, build):
    """`build(json in path)`, with any failure reported as a ValueError that names the file."""
    path = Path(path)
    try:
        return build(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError,
            AttributeError) as e:
        raise ValueError(f"{path} is not a readable scores file: {type(e).__name__}: {e}") from None
