"""Per-image scores of a synthetic set, against the real images its generator was allowed to see, and
the rules that curate it by them.

Three scores, one per image (`score_set`):
- class confidence, in [0, 1]: the probability a classifier trained on the real images alone (the lab
  encoder, metrics.encoder, trained without a validation split, so it sees those images and no others)
  gives the image its own label. Low: the image does not look like its class.
- realism, in [0, 1]: the probability a real-vs-synthetic critic (the same network with two classes)
  calls the image real. Cross-fitted: the set is cut into `folds` folds and each fold is scored by a
  critic trained on all the real images against the other folds, so no image is scored by a critic that
  saw it. Low: obviously fake.
- distance to the nearest real image: RMS pixel difference on a [0, 1] scale (metrics.pairing). An image
  is a suspected copy when it is closer to a real image than `copy_quantile` of the real images are to
  their nearest other real image (leave-one-out, so the threshold needs no image beyond the allowed
  ones), and never below metrics.memorization.EXACT_COPY.

A `CurationRule` (thresholds on the scores) says which images a curated set keeps (`select`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from data.config import MAX_SEED, MAX_STEPS, Config, option
from data.files import atomic_write_json
from data.hooks import NO_HOOKS, Hooks
from data.imageset import ImageSet
from metrics.encoder import EncoderConfig, train_encoder, training_seconds
from metrics.memorization import EXACT_COPY
from metrics.pairing import check_compatible, flatten, nearest_neighbours

REAL, SYNTHETIC = 1, 0  # the critic's classes
SCORE_TITLES = {"confidence": "class confidence", "realism": "realism",
                "distance": "distance to the nearest real image"}


@dataclass(frozen=True)
class CurationConfig(Config):
    """How the per-image scores are computed."""
    folds: int = option(5, label="Critic folds", min=2, max=20,
                        help="cross-fitting: each fold of the set is scored by a critic trained on the others")
    steps: int = option(300, label="Steps per model", min=1, max=MAX_STEPS,
                        help="optimizer steps of the class classifier and of each critic (at least one pass)")
    copy_quantile: float = option(0.01, label="Copy quantile", min=0, max=0.5,
                                  help="an image closer to a real one than this share of real images are to "
                                       "each other is a suspected copy")
    seed: int = option(0, label="Seed", min=0, max=MAX_SEED)

    def encoder(self) -> EncoderConfig:
        return EncoderConfig(epochs=1, min_steps=self.steps, seed=self.seed)


@dataclass(frozen=True)
class CurationRule(Config):
    """Which images a curated set keeps; the defaults keep every image."""
    min_confidence: float = option(0.0, label="Minimum class confidence", min=0, max=1,
                                   help="keep images the real-data classifier gives their own label with at "
                                        "least this probability")
    min_realism: float = option(0.0, label="Minimum realism", min=0, max=1,
                                help="keep images the cross-fitted critic calls real with at least this probability")
    drop_copies: bool = option(False, label="Drop suspected copies",
                               help="drop images closer to a real image than real images are to each other")

    @property
    def text(self) -> str:
        parts = [f"class confidence ≥ {self.min_confidence:g}" if self.min_confidence else "",
                 f"realism ≥ {self.min_realism:g}" if self.min_realism else "",
                 "no suspected copies" if self.drop_copies else ""]
        return ", ".join(p for p in parts if p) or "keep every image"


@dataclass
class CurationScores:
    """The scores of one set, one entry per image in the set's order."""
    labels: np.ndarray  # int, N: each image's label
    confidence: np.ndarray  # float, N, in [0, 1]
    realism: np.ndarray  # float, N, in [0, 1]
    distance: np.ndarray  # float, N, RMS pixel distance in [0, 1] to the nearest allowed real image
    nearest: np.ndarray  # int, N: index of that real image among the allowed ones
    copy_threshold: float  # distance at or below which an image is a suspected copy
    real_images: int  # allowed real images the models learned from

    @property
    def suspected_copy(self) -> np.ndarray:
        return self.distance <= self.copy_threshold

    def __len__(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict:
        return {"labels": self.labels.tolist(), "confidence": self.confidence.tolist(),
                "realism": self.realism.tolist(), "distance": self.distance.tolist(), "nearest": self.nearest.tolist(),
                "copy_threshold": self.copy_threshold, "real_images": self.real_images}

    def save(self, path: Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> CurationScores:
        """The scores in `path`; a missing, unreadable or malformed file is a ValueError naming it."""
        try:
            d = json.loads(Path(path).read_text())
            scores = cls(np.asarray(d["labels"], dtype=np.int64), *(np.asarray(d[k], dtype=np.float64) for k in
                                                                     ("confidence", "realism", "distance")),
                         np.asarray(d["nearest"], dtype=np.int64), float(d["copy_threshold"]), int(d["real_images"]))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path} is not a readable curation scores file: {type(e).__name__}: {e}") from None
        arrays = (scores.labels, scores.confidence, scores.realism, scores.distance, scores.nearest)
        if any(a.ndim != 1 or len(a) != len(scores.labels) for a in arrays):
            raise ValueError(f"{path} is not a readable curation scores file: its per-image lists differ in length")
        return scores


def select(scores: CurationScores, rule: CurationRule) -> np.ndarray:
    """Bool per image: True where the image passes every threshold of `rule`."""
    keep = (scores.confidence >= rule.min_confidence) & (scores.realism >= rule.min_realism)
    return keep & ~scores.suspected_copy if rule.drop_copies else keep


def worst_first(scores: CurationScores, by: str) -> np.ndarray:
    """Image indices ordered worst first by one score (`SCORE_TITLES`): least confident, least real, or closest
    to a real image; ties keep the set's order."""
    if by not in SCORE_TITLES:
        raise ValueError(f"unknown score {by!r}; choose {', '.join(SCORE_TITLES)}")
    return np.argsort(getattr(scores, by), kind="stable")


def drop_reasons(scores: CurationScores, rule: CurationRule) -> dict[str, int]:
    """How many images each threshold of `rule` rejects (an image can fail several)."""
    return {"low class confidence": int((scores.confidence < rule.min_confidence).sum()),
            "low realism": int((scores.realism < rule.min_realism).sum()),
            "suspected copy": int(scores.suspected_copy.sum()) if rule.drop_copies else 0}


def score_set(synthetic: ImageSet, real: ImageSet, config: CurationConfig = CurationConfig(),
              hooks: Hooks = NO_HOOKS) -> CurationScores:
    """Every image's class confidence, realism and distance to the nearest of the `real` images (those the
    set's generator was allowed to see: the only real images the scores' models learn from)."""
    check_compatible(synthetic, real)
    if synthetic.labels.max(initial=0) >= real.num_classes:
        raise ValueError(f"{synthetic.source or 'the set'}: labels go up to {synthetic.labels.max()} but the real "
                         f"images have {real.num_classes} classes")
    folds = min(config.folds, len(synthetic))
    stages = 1 + folds
    confidence = class_confidence(synthetic, real, config, _stage(hooks, 0, stages, "class classifier"))
    realism = cross_fitted_realism(synthetic, real, config, folds, hooks, stages)
    neighbours = nearest_neighbours(synthetic, real)
    hooks.progress(stages, stages, "scored", force=True)
    return CurationScores(synthetic.labels.copy(), confidence, realism, neighbours.any_distance,
                          neighbours.any_index, copy_threshold(real, config.copy_quantile), len(real))


def expected_seconds(real: int, generated: int, side: int, config: CurationConfig = CurationConfig()) -> float:
    """About how long `score_set` takes on a 2-core CPU for `generated` images against `real` ones of `side` px:
    the class classifier on the real images and one critic per fold on them and the other folds (the
    nearest-real search is small beside these models)."""
    folds = min(config.folds, generated)
    critic_images = real + generated - generated // max(folds, 1)
    return training_seconds(real, side, config.encoder()) + folds * training_seconds(critic_images, side,
                                                                                      config.encoder())


def class_confidence(synthetic: ImageSet, real: ImageSet, config: CurationConfig = CurationConfig(),
                     hooks: Hooks = NO_HOOKS) -> np.ndarray:
    """Float N in [0, 1]: the probability a classifier trained on `real` gives each synthetic image its label."""
    classifier = train_encoder(real, None, config.encoder(), cache=False, hooks=hooks)
    proba = classifier.predict_proba(synthetic.images)
    return proba[np.arange(len(synthetic)), synthetic.labels].astype(np.float64)


def cross_fitted_realism(synthetic: ImageSet, real: ImageSet, config: CurationConfig = CurationConfig(),
                         folds: int | None = None, hooks: Hooks = NO_HOOKS, stages: int = 0) -> np.ndarray:
    """Float N in [0, 1]: the probability that a critic trained on `real` against the other folds of the set
    calls each synthetic image real."""
    folds = folds or min(config.folds, len(synthetic))
    fold_of = np.random.default_rng(config.seed).permutation(len(synthetic)) % folds
    realism = np.empty(len(synthetic), dtype=np.float64)
    for k in range(folds):
        others = synthetic.images[fold_of != k]
        critic_data = ImageSet(np.concatenate([real.images, others]),
                               np.concatenate([np.full(len(real), REAL), np.full(len(others), SYNTHETIC)]),
                               ["synthetic", "real"], "train", f"{real.source} vs synthetic, fold {k}")
        hooks_k = _stage(hooks, stages - folds + k, stages or folds, f"critic {k + 1}/{folds}")
        critic = train_encoder(critic_data, None, config.encoder(), cache=False, hooks=hooks_k)
        realism[fold_of == k] = critic.predict_proba(synthetic.images[fold_of == k])[:, REAL]
    return realism


@torch.no_grad()
def copy_threshold(real: ImageSet, quantile: float, chunk: int = 1024) -> float:
    """The `quantile` of the real images' distances to their nearest other real image (at least EXACT_COPY;
    EXACT_COPY when there is a single real image)."""
    if len(real) < 2:
        return EXACT_COPY
    ref = flatten(real.images)
    ref_sq = ref.pow(2).sum(1)
    nearest = np.empty(len(real), dtype=np.float64)
    for start in range(0, len(real), chunk):
        q = ref[start:start + chunk]
        d2 = (q.pow(2).sum(1, keepdim=True) - 2 * q @ ref.T + ref_sq).clamp_(min=0)
        rows = torch.arange(len(q))
        d2[rows, rows + start] = float("inf")  # not its own neighbour
        nearest[start:start + len(q)] = d2.min(1).values.double().numpy()
    return max(float(np.quantile(np.sqrt(nearest / ref.shape[1]), quantile)), EXACT_COPY)


def kept_per_class(labels: np.ndarray, keep: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(labels[keep], minlength=num_classes).tolist()


def _stage(hooks: Hooks, index: int, count: int, label: str) -> Hooks:
    """`hooks` for the index-th of `count` models: its steps fill that share of one progress bar."""
    def progress(done: int, total: int, message: str = "", **metrics) -> None:
        hooks.progress(index * total + done, count * total, f"{label}: {message}", **metrics)

    return replace(hooks, progress=progress)
