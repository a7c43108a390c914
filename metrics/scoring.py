"""Score synthetic sets against a dataset's real training split: everything the lab reports.

`Reference` holds what every set is compared with (training images, the encoder, its real
features and their statistics, the held-out distances that calibrate memorization) and is built
once per job. `score_set` measures one set (a `SetScores`): per pairing strategy, each piqa
metric as a mean with a bootstrap 95% interval and the number of pairs, overall and per class;
the distribution metrics with the encoder that produced them, against the whole training split
and against training images drawn in the set's own class proportions; and the memorization
check. `score_sets` runs a whole job's worth (`Scores`), resumable set by set.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from data.config import Config, ConfigError, option
from data.datasets import Dataset, DatasetSpec
from data.grid import make_grid
from data.hooks import NO_HOOKS, Hooks
from data.imageset import ImageSet
from data.synthetic import load_set, read_meta
from metrics.distribution import distribution_scores, feature_statistics
from metrics.encoder import Encoder, EncoderConfig, train_encoder
from metrics.memorization import memorization
from metrics.pairing import STRATEGIES, Neighbours, nearest_neighbours, nearest_pairing, random_pairing
from metrics.quality import METRICS, applicability, score_pairs
from metrics.scores import (ClosePair, DistributionScores, MemorizationScores, MetricInfo, MetricScore,
                            PairingScores, Scores, SetScores)
from metrics.stats import bootstrap_mean


@dataclass
class ScoreConfig(Config):
    sets: list[str] = field(default_factory=list)  # synthetic set npz paths
    dataset: dict | None = None  # DatasetSpec dict; None: the first set's metadata names it
    pairings: list[str] = option(factory=lambda: ["nearest"], label="Pairing",
                                 help="partner of each synthetic image: 'nearest' real image of its class, "
                                      "'random' real image (the older protocol), or both")
    metrics: list[str] = option(factory=lambda: list(METRICS), label="Metrics", help="piqa metric keys")
    small: str = option("upsample", label="Images below a metric's minimum size", choices=("upsample", "skip"))
    distribution: bool = option(True, label="Distribution metrics",
                                help="FID, KID, precision/recall, density/coverage in the encoder's feature space")
    memorization_quantile: float = option(0.01, label="Memorization quantile", min=0, max=1, min_exclusive=True,
                                          help="share of held-out real images that sets the suspected-copy threshold")
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    gallery_size: int = option(16, label="Gallery size", min=0, help="closest pairs shown per set")
    seed: int = option(0, label="Seed")

    def validate(self) -> None:
        if not self.pairings or any(p not in STRATEGIES for p in self.pairings):
            raise ConfigError(f"ScoreConfig.pairings must be one or more of {', '.join(STRATEGIES)}; "
                              f"got {self.pairings}")
        if not self.metrics or any(k not in METRICS for k in self.metrics):
            raise ConfigError(f"ScoreConfig.metrics must be one or more of {', '.join(METRICS)}; got {self.metrics}")


def dataset_spec_for(config: ScoreConfig) -> DatasetSpec:
    """The dataset to compare with: the config's, else the one the first set was made from."""
    if config.dataset:
        return DatasetSpec.from_dict(config.dataset)
    for path in config.sets:
        meta = read_meta(path)
        if meta.get("dataset"):
            return DatasetSpec.from_dict(meta["dataset"])
    raise ValueError("no dataset given and the sets' metadata names none; pass the dataset spec")


@dataclass
class Reference:
    dataset: Dataset
    encoder: Encoder | None
    real_features: np.ndarray | None  # encoder features of the training images, N×D
    real_statistics: tuple[np.ndarray, np.ndarray] | None  # their mean and covariance (float64), for FID
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
    statistics = feature_statistics(features) if features is not None else None
    return Reference(dataset, encoder, features, statistics, heldout)


def score_set(synthetic: ImageSet, reference: Reference, config: ScoreConfig) -> SetScores:
    """Measure one synthetic set (its identity fields are left for the caller to fill)."""
    train = reference.train
    if synthetic.class_names and len(synthetic.class_names) != train.num_classes:
        raise ValueError(f"the set has {len(synthetic.class_names)} classes but {reference.dataset.spec.label} "
                         f"has {train.num_classes}; score it against the dataset it was made from")
    neighbours = nearest_neighbours(synthetic, train)
    pairings = {}
    for strategy in config.pairings:
        pairing = nearest_pairing(neighbours) if strategy == "nearest" else \
            random_pairing(synthetic, train, seed=config.seed)
        values = score_pairs(synthetic.images, train.images[pairing.real_index], config.metrics, small=config.small)
        pairings[strategy] = PairingScores(
            float(pairing.distance.mean()),
            {k: summarise(v, synthetic.labels, train.class_names) for k, v in values.items()})
    distribution = matched = None
    if config.distribution and reference.encoder is not None:
        fake = reference.encoder.features(synthetic.images)
        distribution = DistributionScores(
            **distribution_scores(reference.real_features, fake, config.seed, reference.real_statistics),
            encoder=reference.encoder.name)
        index = class_matched_index(train.labels, synthetic.class_counts(), config.seed)
        matched = DistributionScores(**distribution_scores(reference.real_features[index], fake, config.seed),
                                     encoder=reference.encoder.name)
    return SetScores(len(synthetic), synthetic.class_counts().tolist(),
                     {k: applicability(METRICS[k], synthetic.size, config.small) for k in config.metrics},
                     pairings, memorization_scores(synthetic, neighbours, reference, config),
                     distribution, matched)


def memorization_scores(synthetic: ImageSet, neighbours: Neighbours, reference: Reference,
                        config: ScoreConfig) -> MemorizationScores:
    """The memorization check of `synthetic`, whose nearest training images are `neighbours`."""
    memo = memorization(neighbours.any_distance, reference.heldout_distance, config.memorization_quantile)
    class_names = reference.train.class_names
    return MemorizationScores(
        memo.threshold, memo.quantile, memo.fraction, int(memo.suspected.sum()), memo.quantile,
        float(np.median(memo.distance)) if len(memo.distance) else float("nan"),
        float(np.median(memo.heldout_distance)),
        {class_names[c]: bootstrap_mean(memo.suspected[synthetic.labels == c].astype(float))
         for c in np.unique(synthetic.labels)},
        [ClosePair(int(i), int(neighbours.any_index[i]), float(memo.distance[i]), bool(memo.suspected[i]))
         for i in memo.closest(config.gallery_size)])


def score_saved_set(path: str | Path, reference: Reference, config: ScoreConfig) -> SetScores:
    """Score the synthetic set saved at `path`, named from its metadata sidecar."""
    started = time.time()
    meta = read_meta(path)
    scores = score_set(load_set(path), reference, config)
    return replace(scores, path=str(Path(path).resolve()), name=meta.get("name") or Path(path).stem,
                   generator=meta.get("generator", "?"), run_id=meta.get("run_id"),
                   train_seconds=meta.get("train_seconds"), seconds=round(time.time() - started, 2))


def score_sets(dataset: Dataset, config: ScoreConfig, hooks: Hooks = NO_HOOKS) -> Scores:
    """Score every set of `config.sets` against `dataset`'s training split.

    The encoder is trained (or loaded from its cache) and the reference built once; then the sets
    are scored in turn. Each finished set is kept in `hooks.checkpoints` as `set_<i>.json`, so a
    resumed job skips it. A stop request is honoured after the set in progress (which is kept):
    `Interrupted` is raised. Progress counts the encoder's training steps (none when it comes
    from the cache), then one step per set.
    """
    if not config.sets:
        raise ValueError("scoring needs at least one synthetic set")
    encoder, encoder_steps = None, 0
    if config.distribution:
        def encoder_progress(done: int, total: int, message: str = "", **metrics) -> None:
            nonlocal encoder_steps
            encoder_steps = total
            hooks.progress(done, total + len(config.sets), message, **metrics)

        hooks.event(type="stage", stage="encoder")
        encoder = train_encoder(dataset.train, dataset.val, config.encoder,
                                hooks=replace(hooks, progress=encoder_progress))
    total = encoder_steps + len(config.sets)
    hooks.progress(encoder_steps, total, "computing real features", force=True)
    reference = build_reference(dataset, encoder)
    results = []
    for i, path in enumerate(config.sets):
        checkpoint = hooks.checkpoints / f"set_{i}.json" if hooks.checkpoints is not None else None
        if checkpoint is not None and checkpoint.exists():
            results.append(SetScores.load(checkpoint))
            continue
        hooks.progress(encoder_steps + i, total, f"scoring {Path(path).name}", force=True)
        result = score_saved_set(path, reference, config)
        if checkpoint is not None:
            result.save(checkpoint)
        results.append(result)
        hooks.event(type="set", index=i, name=result.name, seconds=result.seconds)
        hooks.stop_if_asked()
    hooks.progress(total, total, f"scored {len(results)} set(s)", force=True)
    encoder_record = None if encoder is None else {"name": encoder.name, **encoder.info,
                                                   "config": encoder.config.to_dict()}
    return Scores(dataset.spec.to_dict(), config.to_dict(), time.time(), encoder_record,
                  {key: MetricInfo.of(m) for key, m in METRICS.items()}, results)


def memorization_gallery(synthetic: np.ndarray, train: np.ndarray, memo: MemorizationScores) -> np.ndarray | None:
    """One image: top row the synthetic images closest to the training set, bottom row those
    training images (uint8 H×W×C); None when there are no pairs to show."""
    if not memo.closest:
        return None
    top = synthetic[[c.synthetic_index for c in memo.closest]]
    bottom = train[[c.train_index for c in memo.closest]]
    return make_grid(np.concatenate([top, bottom]), ncol=len(memo.closest))


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


def summarise(values: np.ndarray, labels: np.ndarray, class_names: list[str]) -> MetricScore:
    """Mean, bootstrap interval and n over all pairs and per class; n counts applicable pairs."""
    overall = bootstrap_mean(values)
    return MetricScore(overall.mean, overall.lo, overall.hi, overall.n,
                       {class_names[c]: bootstrap_mean(values[labels == c]) for c in np.unique(labels)})
