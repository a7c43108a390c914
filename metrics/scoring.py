"""Score synthetic sets against a dataset's real training split: everything the lab reports.

`Reference` holds what every set is compared with (training images, the real images in each
feature space with their statistics, the held-out distances that calibrate memorization) and is
built once per job. `score_set` measures one set (a `SetScores`): per pairing strategy, each
piqa metric as a mean with a bootstrap 95% interval and the number of pairs, overall and per
class; the distribution metrics in each feature space, against the training split and against
training images drawn in the set's own class proportions; and the memorization check.
`score_sets` runs a whole job's worth (`Scores`), resumable set by set.

Two feature spaces, each number naming its own:
- Inception-v3 (TF-FID pool3, metrics.inception; clean-fid's resizing: every image, a 28 px one
  too, goes to 299×299 by PIL bicubic on float channels, grayscale repeated to RGB). On a CPU it
  costs about 0.2-0.5 s per image, so the real reference is a stratified, seeded sample of at
  most `inception_real_images` training images (2000 by default; its statistics are computed once
  per dataset and cached on disk), and each set is sampled down to `inception_synthetic_images`
  (1000) the same way. FID is biased by the number of images: compare FIDs at equal counts.
- the lab encoder (metrics.encoder), trained on the training split; its numbers are withheld,
  with the reason, when its validation balanced accuracy is not clearly above chance.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from data.config import MAX_SEED, MAX_STEPS, Config, ConfigError, option
from data.datasets import Dataset, DatasetSpec
from data.device import resolve_device
from data.grid import make_grid
from data.hooks import NO_HOOKS, Hooks, one_bar
from data.imageset import ImageSet
from data.synthetic import load_set, read_meta
from metrics.distribution import distribution_scores, feature_statistics
from metrics.encoder import Encoder, EncoderConfig, train_encoder
from metrics.encoder import expected_seconds as expected_encoder_seconds
from metrics.inception import (FEATURE_SPACE, PREPROCESSING, inception_features, reference_path, reference_set,
                               seconds_per_image)
from metrics.memorization import memorization
from metrics.pairing import STRATEGIES, Neighbours, nearest_neighbours, nearest_pairing, random_pairing
from metrics.quality import METRICS, applicability, score_pairs
from metrics.scores import (CLASS_MATCHED, ENCODER, INCEPTION, TRAIN_SPLIT, ClosePair, DistributionScores,
                            EncoderSummary, InceptionSummary, MemorizationScores, MetricInfo, MetricScore,
                            PairingScores, Scores, SetScores)
from metrics.stats import bootstrap_mean, proportion


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
                                help="FID, KID, precision/recall, density/coverage (in Inception's space and the "
                                     "lab encoder's)")
    inception: bool = option(True, label="Inception-v3 feature space",
                             help="the standard TF-FID Inception-v3 numbers (slow on a CPU: about 0.2-0.5 s per image)")
    inception_real_images: int = option(2000, label="Inception real reference (images)", min=2, max=50_000,
                                        help="training images whose Inception statistics are computed once per "
                                             "dataset and cached (a stratified sample when the split is larger)")
    inception_synthetic_images: int = option(1000, label="Inception images per set", min=2, max=50_000,
                                             help="a larger set is sampled down to this many (stratified, seeded)")
    memorization_quantile: float = option(0.01, label="Memorization quantile", min=0, max=1, min_exclusive=True,
                                          help="share of held-out real images that sets the suspected-copy threshold")
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    gallery_size: int = option(16, label="Gallery size", min=0, max=1000, help="closest pairs shown per set")
    seed: int = option(0, label="Seed", min=0, max=MAX_SEED)
    prescreen: bool = option(False, label="Pre-screen (train on synthetic, test on real)",
                             help="after the image metrics, train the study's classifier on each set alone at a small "
                                  "budget and test it on the real test split (the classification accuracy score), "
                                  "beside the same classifier trained on the real training split")
    prescreen_steps: int | None = option(None, label="Pre-screen optimizer steps", min=1, max=MAX_STEPS,
                                         help="the pre-screen classifiers' budget; empty: the study's pre-screen "
                                              "budget (classifier.prescreen.CAS_BUDGET)")

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
class RealFeatures:
    """Real training images in one feature space: labels (N), features (N×D) and their Gaussian fit
    (mean, covariance in float64) for FID."""
    labels: np.ndarray
    features: np.ndarray
    statistics: tuple[np.ndarray, np.ndarray]
    cached: bool = False  # read from the disk cache of its dataset rather than computed by this job


@dataclass
class Reference:
    dataset: Dataset
    heldout_distance: np.ndarray  # each validation image's distance to its nearest training image
    encoder: Encoder | None = None  # None without distribution metrics
    encoder_real: RealFeatures | None = None  # None also when the encoder's numbers are withheld
    inception_real: RealFeatures | None = None  # the (sampled) training split in Inception's space

    @property
    def train(self) -> ImageSet:
        return self.dataset.train


def sample_of(images: ImageSet, cap: int, seed: int = 0) -> ImageSet:
    """`images` when there are at most `cap`, else exactly `cap` of them, each class keeping its share
    (±1 image): every (N/cap)-th of the images ordered by class, randomly (seeded) within a class."""
    if len(images) <= cap:
        return images
    order = np.lexsort((np.random.default_rng(seed).random(len(images)), images.labels))
    return images.take(np.sort(order[np.arange(cap) * len(images) // cap]))


def build_reference(dataset: Dataset, config: ScoreConfig, encoder: Encoder | None = None,
                    hooks: Hooks = NO_HOOKS) -> Reference:
    """Everything that depends only on the real data (computed once per job; Inception's real
    statistics once per dataset, from the disk cache afterwards)."""
    if len(dataset.val) == 0:
        raise ValueError(f"{dataset.spec.label} has no validation images to calibrate memorization")
    held_out = nearest_neighbours(dataset.val, dataset.train, device=resolve_device("auto")).any_distance
    reference = Reference(dataset, held_out, encoder)
    if encoder is not None and not encoder.withheld_reason():
        features = encoder.features(dataset.train.images)
        reference.encoder_real = RealFeatures(dataset.train.labels, features, feature_statistics(features))
    if config.distribution and config.inception:
        sample = sample_of(dataset.train, config.inception_real_images, config.seed)
        real = reference_set(sample, dataset.spec, hooks=hooks)
        reference.inception_real = RealFeatures(sample.labels, real.features, (real.mu, real.sigma), real.cached)
    return reference


# Rules of thumb for a 2-core CPU, seconds: what one synthetic image costs to pair and measure with the
# piqa metrics, and an Inception image before this machine has measured its own pace (metrics.inception)
SET_IMAGE_S = 0.01
INCEPTION_IMAGE_S = 0.3
REFERENCE_S = 1.0  # the real reference without Inception: nearest distances, encoder features
ENCODER_STAGE = "lab encoder"  # the stages of score_sets, each a part of one progress bar
REFERENCE_STAGE = "real reference"


def set_stage(index: int, path: str | Path, count: int) -> str:
    return f"set {index + 1}/{count} {Path(path).name}"


def expected_costs(dataset: Dataset, config: ScoreConfig) -> dict[str, float]:
    """About how long each stage of `score_sets` takes (seconds, by stage name, in order): what the
    disk caches of the dataset already hold costs nothing. `one_bar` sizes each stage's share by them."""
    counts = [read_meta(path).get("count") for path in config.sets]  # a sidecar is a guide here, never trusted
    set_sizes = [count if isinstance(count, int) and count > 0 else 0 for count in counts]
    inception_s = seconds_per_image() or INCEPTION_IMAGE_S
    costs = {ENCODER_STAGE: expected_encoder_seconds(dataset.train, config.encoder) if config.distribution else 0.0}
    real = inception_images(dataset, config, [])
    costs[REFERENCE_STAGE] = REFERENCE_S + real * inception_s
    inception_on = config.distribution and config.inception
    for i, (path, size) in enumerate(zip(config.sets, set_sizes)):
        costs[set_stage(i, path, len(config.sets))] = size * SET_IMAGE_S + \
            (min(size, config.inception_synthetic_images) * inception_s if inception_on else 0.0)
    return costs


def inception_images(dataset: Dataset, config: ScoreConfig, set_sizes: list[int]) -> int:
    """How many images Inception has to embed for a job: the real reference unless it is cached, plus
    each set's sample (for an estimate before launching; 0 when Inception is off)."""
    if not (config.distribution and config.inception):
        return 0
    sample = sample_of(dataset.train, config.inception_real_images, config.seed)
    real = 0 if reference_path(sample, dataset.spec).exists() else len(sample)
    return real + sum(min(n, config.inception_synthetic_images) for n in set_sizes)


def score_set(synthetic: ImageSet, reference: Reference, config: ScoreConfig, hooks: Hooks = NO_HOOKS) -> SetScores:
    """Measure one set (its identity fields are left for the caller to fill). `hooks` reports the
    Inception features' progress and may stop them."""
    train = reference.train
    if synthetic.class_names and len(synthetic.class_names) != train.num_classes:
        raise ValueError(f"the set has {len(synthetic.class_names)} classes but {reference.dataset.spec.label} "
                         f"has {train.num_classes}; score it against the dataset it was made from")
    neighbours = nearest_neighbours(synthetic, train, device=resolve_device("auto"))
    pairings = {}
    for strategy in config.pairings:
        pairing = nearest_pairing(neighbours) if strategy == "nearest" else \
            random_pairing(synthetic, train, seed=config.seed)
        values = score_pairs(synthetic.images, train.images[pairing.real_index], config.metrics, small=config.small,
                             device="auto")
        pairings[strategy] = PairingScores(
            float(pairing.distance.mean()),
            {k: summarise(v, synthetic.labels, train.class_names) for k, v in values.items()})
    distribution = []
    if reference.inception_real is not None:
        sample = sample_of(synthetic, config.inception_synthetic_images, config.seed)
        distribution += compare(reference.inception_real, inception_features(sample.images, hooks=hooks), sample,
                                INCEPTION, FEATURE_SPACE, config.seed)
    if reference.encoder_real is not None:
        distribution += compare(reference.encoder_real, reference.encoder.features(synthetic.images), synthetic,
                                ENCODER, reference.encoder.name, config.seed)
    return SetScores(len(synthetic), synthetic.class_counts().tolist(),
                     {k: applicability(METRICS[k], synthetic.size, config.small) for k in config.metrics},
                     pairings, memorization_scores(synthetic, neighbours, reference, config), distribution)


def compare(real: RealFeatures, fake: np.ndarray, synthetic: ImageSet, space: str, feature_space: str,
            seed: int) -> list[DistributionScores]:
    """The distribution metrics of `synthetic` (features `fake`) against the whole real reference and
    against real images drawn in the set's class mix."""
    whole = distribution_scores(real.features, fake, seed, real.statistics)
    index = class_matched_index(real.labels, synthetic.class_counts(), seed)
    matched = distribution_scores(real.features[index], fake, seed)
    return [DistributionScores(**whole, space=space, reference=TRAIN_SPLIT, feature_space=feature_space),
            DistributionScores(**matched, space=space, reference=CLASS_MATCHED, feature_space=feature_space)]


def memorization_scores(synthetic: ImageSet, neighbours: Neighbours, reference: Reference,
                        config: ScoreConfig) -> MemorizationScores:
    """The memorization check of `synthetic`, whose nearest training images are `neighbours`."""
    memo = memorization(neighbours.any_distance, reference.heldout_distance, config.memorization_quantile)
    class_names = reference.train.class_names
    return MemorizationScores(
        memo.threshold, memo.quantile, memo.fraction, int(memo.suspected.sum()), memo.quantile,
        float(np.median(memo.distance)) if len(memo.distance) else float("nan"),
        float(np.median(memo.heldout_distance)),
        {class_names[c]: proportion(int(memo.suspected[synthetic.labels == c].sum()),
                                    int((synthetic.labels == c).sum()))
         for c in np.unique(synthetic.labels)},
        [ClosePair(int(i), int(neighbours.any_index[i]), float(memo.distance[i]), bool(memo.suspected[i]))
         for i in memo.closest(config.gallery_size)])


def score_saved_set(path: str | Path, reference: Reference, config: ScoreConfig, hooks: Hooks = NO_HOOKS) -> SetScores:
    """Score the synthetic set saved at `path`, named from its metadata sidecar."""
    started = time.time()
    meta = read_meta(path)
    scores = score_set(load_set(path), reference, config, hooks)
    return replace(scores, path=str(Path(path).resolve()), name=meta.get("name") or Path(path).stem,
                   generator=meta.get("generator", "?"), run_id=meta.get("run_id"),
                   train_seconds=meta.get("train_seconds"), seconds=round(time.time() - started, 2))


def check_sets(paths: list[str] | list[Path], dataset: Dataset) -> None:
    """Refuse, before any work, the sets whose images cannot be compared with `dataset`'s: a ValueError
    naming each such file and why (another image size or channel count, or another number of classes).
    A set that only says it was made from another dataset is scored (the pre-screen names it)."""
    train, problems = dataset.train, []
    for path in paths:
        try:
            images = load_set(path)
        except ValueError as e:
            problems.append(str(e))
            continue
        if (images.size, images.channels) != (train.size, train.channels):
            problems.append(f"{Path(path).name}: {images.size} px × {images.channels} channel(s), not "
                            f"{train.size} px × {train.channels}")
        elif images.class_names and len(images.class_names) != train.num_classes:
            problems.append(f"{Path(path).name}: {len(images.class_names)} classes, not the dataset's "
                            f"{train.num_classes}")
    if problems:
        raise ValueError(f"cannot score against {dataset.spec.label}: " + "; ".join(problems)
                         + " (score each set against the dataset it was made from)")


def score_sets(dataset: Dataset, config: ScoreConfig, hooks: Hooks = NO_HOOKS) -> Scores:
    """Score every set of `config.sets` against `dataset`'s training split.

    In stages, each a part of one progress bar (`hooks.part`; this function makes `one_bar` of them
    by their `expected_costs` unless its caller did, for a job of more stages): the encoder is trained
    (or loaded from its cache), the reference built (Inception's real statistics computed, or loaded
    from their cache), then the sets are scored in turn. What came from a cache is listed in the
    result's `cached`. Each finished set is kept in `hooks.checkpoints` as `set_<i>.json`, so a resumed
    job skips it. A stop request is honoured within a stage and after each set (a finished set is
    kept): `Interrupted` is raised.
    """
    if not config.sets:
        raise ValueError("scoring needs at least one synthetic set")
    check_sets(config.sets, dataset)
    if hooks.stage is None:
        hooks = one_bar(hooks, expected_costs(dataset, config))
    encoder = None
    if config.distribution:
        part = hooks.part(ENCODER_STAGE)
        part.progress(0, 1, "loading or training", force=True)
        encoder = train_encoder(dataset.train, dataset.val, config.encoder, hooks=part)
        part.progress(1, 1, "cached" if encoder.cached else "trained", force=True)
    part = hooks.part(REFERENCE_STAGE)
    part.progress(0, 1, "nearest distances, features", force=True)
    reference = build_reference(dataset, config, encoder, part)
    part.progress(1, 1, "ready", force=True)
    results = []
    for i, path in enumerate(config.sets):
        part = hooks.part(set_stage(i, path, len(config.sets)))
        checkpoint = hooks.checkpoints / f"set_{i}.json" if hooks.checkpoints is not None else None
        if checkpoint is not None and checkpoint.exists():
            results.append(SetScores.load(checkpoint))
            part.progress(1, 1, "scored before this job was resumed", force=True)
            continue
        part.progress(0, 1, "scoring", force=True)
        result = score_saved_set(path, reference, config, part)
        if checkpoint is not None:
            result.save(checkpoint)
        results.append(result)
        part.progress(1, 1, "scored", force=True)
        hooks.event(type="set", index=i, name=result.name, seconds=result.seconds)
        hooks.stop_if_asked()
    hooks.progress(1, 1, f"scored {len(results)} set(s)", force=True)
    cached = [name for name, taken in (("lab encoder", encoder is not None and encoder.cached),
                                       ("Inception real reference", reference.inception_real is not None
                                        and reference.inception_real.cached)) if taken]
    for name in cached:
        hooks.event(type="cached", part=name)
    return Scores(dataset.spec.to_dict(), config.to_dict(), time.time(), inception_summary(reference, config),
                  encoder_summary(encoder), {key: MetricInfo.of(m) for key, m in METRICS.items()}, results, cached)


def inception_summary(reference: Reference, config: ScoreConfig) -> InceptionSummary | None:
    if reference.inception_real is None:
        return None
    return InceptionSummary(FEATURE_SPACE, PREPROCESSING, len(reference.inception_real.labels), len(reference.train),
                            config.inception_synthetic_images, config.seed, resolve_device("auto"))


def encoder_summary(encoder: Encoder | None) -> EncoderSummary | None:
    if encoder is None:
        return None
    info = encoder.info
    return EncoderSummary(encoder.name, info.get("val_balanced_accuracy"), info.get("val_balanced_chance"),
                          info.get("val_p_value"), encoder.withheld_reason(), info, encoder.config.to_dict())


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
