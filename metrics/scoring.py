"""Score one synthetic set against a dataset's real training split: everything the lab reports.

`Reference` holds what every set is compared with (training images, the encoder and its real
features, the held-out distances that calibrate memorization) and is built once per job.
`score_set` returns a plain dict (JSON-ready) with, per pairing strategy, each piqa metric as
a mean with a bootstrap 95% interval and the number of pairs, overall and per class; the
distribution metrics with the encoder that produced them, against the whole training split and
against training images drawn in the set's own class proportions; and the memorization check.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from data.datasets import Dataset
from data.imageset import ImageSet
from metrics.distribution import distribution_scores
from metrics.encoder import Encoder
from metrics.memorization import memorization
from metrics.pairing import STRATEGIES, nearest_neighbours, nearest_pairing, random_pairing
from metrics.quality import METRICS, applicability, score_pairs
from metrics.stats import bootstrap_mean


@dataclass
class ScoreConfig:
    sets: list[str] = field(default_factory=list)  # synthetic set npz paths
    dataset: dict | None = None  # DatasetSpec dict; None: the first set's metadata says
    pairings: list[str] = field(default_factory=lambda: ["nearest"])  # "nearest" and/or "random"
    metrics: list[str] = field(default_factory=lambda: list(METRICS))
    small: str = "upsample"  # images below a metric's minimum size: "upsample" or "skip"
    distribution: bool = True  # FID, KID, precision/recall, density/coverage
    memorization_quantile: float = 0.01
    encoder: dict = field(default_factory=dict)  # EncoderConfig overrides
    gallery_size: int = 16
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "ScoreConfig":
        config = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        bad = [p for p in config.pairings if p not in STRATEGIES]
        if bad or not config.pairings:
            raise ValueError(f"pairing must be one of {STRATEGIES}, got {config.pairings}")
        return config

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Reference:
    dataset: Dataset
    encoder: Encoder | None
    real_features: np.ndarray | None
    heldout_distance: np.ndarray  # each validation image's distance to its nearest training image

    @property
    def train(self) -> ImageSet:
        return self.dataset.train


def build_reference(dataset: Dataset, encoder: Encoder | None) -> Reference:
    """Everything that depends only on the real data (computed once per job)."""
    if len(dataset.val) == 0:
        raise ValueError(f"{dataset.spec.label} has no validation images to calibrate memorization")
    heldout = nearest_neighbours(dataset.val, dataset.train).any_distance
    features = encoder.features(dataset.train.images) if encoder is not None else None
    return Reference(dataset, encoder, features, heldout)


def score_set(synthetic: ImageSet, reference: Reference, config: ScoreConfig) -> dict:
    train = reference.train
    if synthetic.class_names and len(synthetic.class_names) != train.num_classes:
        raise ValueError(f"the set has {len(synthetic.class_names)} classes but {reference.dataset.spec.label} "
                         f"has {train.num_classes}; score it against the dataset it was made from")
    neighbours = nearest_neighbours(synthetic, train)
    result = {"count": len(synthetic), "class_counts": synthetic.class_counts().tolist(),
              "applicability": {k: applicability(METRICS[k], synthetic.size, config.small) for k in config.metrics},
              "pairings": {}}
    for strategy in config.pairings:
        pairing = nearest_pairing(neighbours) if strategy == "nearest" else \
            random_pairing(synthetic, train, seed=config.seed)
        values = score_pairs(synthetic.images, train.images[pairing.real_index], config.metrics, small=config.small)
        result["pairings"][strategy] = {
            "mean_pixel_distance": float(pairing.distance.mean()),
            "metrics": {k: summarise(v, synthetic.labels, train.class_names) for k, v in values.items()},
        }
    if config.distribution and reference.encoder is not None:
        fake = reference.encoder.features(synthetic.images)
        result["distribution"] = {**distribution_scores(reference.real_features, fake, seed=config.seed),
                                  "encoder": reference.encoder.name}
        matched = class_matched_index(train.labels, synthetic.class_counts(), config.seed)
        result["distribution_class_matched"] = {
            **distribution_scores(reference.real_features[matched], fake, seed=config.seed),
            "encoder": reference.encoder.name}
    memo = memorization(neighbours.any_distance, reference.heldout_distance, config.memorization_quantile)
    per_class = {train.class_names[c]: bootstrap_mean(memo.suspected[synthetic.labels == c].astype(float)).to_dict()
                 for c in np.unique(synthetic.labels)}
    result["memorization"] = {
        **memo.summary(), "per_class": per_class,
        "closest": [{"synthetic_index": int(i), "train_index": int(neighbours.any_index[i]),
                     "distance": float(memo.distance[i]), "suspected": bool(memo.suspected[i])}
                    for i in memo.closest(config.gallery_size)],
    }
    return result


def class_matched_index(train_labels: np.ndarray, synthetic_counts: np.ndarray, seed: int = 0) -> np.ndarray:
    """Training images drawn without replacement in the synthetic set's class proportions.

    A class-balanced synthetic set differs from a skewed training split by design; comparing it
    with real images of the same class mix separates "wrong images" from "different class mix".
    The reference is as large as the rarest class in use allows.
    """
    share = synthetic_counts / max(synthetic_counts.sum(), 1)
    available = np.bincount(train_labels, minlength=len(share))
    used = share > 0
    total = int(np.min(available[used] / share[used]))
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(train_labels == k), min(available[k], round(share[k] * total)),
                                      replace=False) for k in np.flatnonzero(used)])


def summarise(values: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """Mean, bootstrap interval and n over all pairs and per class; n counts applicable pairs."""
    overall = bootstrap_mean(values).to_dict()
    overall["per_class"] = {class_names[c]: bootstrap_mean(values[labels == c]).to_dict()
                            for c in np.unique(labels)}
    return overall
