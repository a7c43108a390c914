"""The pre-screen: train on synthetic, test on real (the classification accuracy score, Ravuri &
Vinyals 2019).

A classifier of the study's kind is trained on a synthetic set alone at a small budget (`CAS_BUDGET`),
selected on the real validation split and scored on the real test split, beside the same classifier
trained on the real training split and the trivial classifier that always predicts the majority class
(`Trivial`). `prescreen_sets` does that for several sets as one job with one progress bar, keeping each
finished classifier's result in the hooks' checkpoint folder so that a resumed job skips it. A
`Prescreen` is what a score job writes to `artifacts/prescreen.json`.

The real-only classifier depends on the real data alone, so its result is cached on disk
(`cache_dir()/prescreen/`) under a digest of everything it depends on: the exact training, validation
and test images and labels (so a subset of the data never reuses the whole split's classifier, nor the
other way round), the budget, the seed, the device and the threads (float sums differ with them). Every
later pre-screen on the same data takes it from there; a cached file that cannot be read is measured
again and replaced, with a line in the log.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from classifier.evaluate import METRIC_LABELS, CLASSIFICATION_METRICS, Trivial, evaluate
from classifier.train import TrainConfig, train_classifier
from data.datasets import Dataset, DatasetSpec
from data.device import resolve_device
from data.files import atomic_write_json, slug
from data.hooks import NO_HOOKS, Hooks, one_bar
from data.imageset import ImageSet
from data.paths import cache_dir
from data.synthetic import incompatibility, load_set, read_meta, set_id

REAL_ONLY = "real only"
CAS_BUDGET = TrainConfig(steps=200, batch_size=64, eval_every=50)
# Up to this image size (px) a pre-screen classifier trains in minutes on a 2-core CPU, so the page and
# the CLI pre-screen by default; larger images cost about (size / 28)² times as much.
CHEAP_PRESCREEN_SIZE = 32
# One EfficientNet-b0 step of 64 images at 28 px on a 2-core CPU, evaluations included (as lab.engine.eta)
STEP_S = 0.28
CACHE_RECIPE = "real-only pre-screen v1"  # in every cache key: a changed recipe never reuses an old result


def classification_accuracy_score(synthetic: ImageSet, data: Dataset, train: TrainConfig = CAS_BUDGET,
                                  seed: int = 0, hooks: Hooks = NO_HOOKS) -> dict:
    """The classification accuracy score of a labelled synthetic set: a classifier trained on the synthetic
    images alone, selected on the real validation split, scored on the real test split. Returns its test
    metrics (`classification_metrics`: CLASSIFICATION_METRICS in [0, 1], per-class recall, confusion). Cheap next to a
    study: one model at a small budget."""
    if synthetic.images.shape[1:] != data.train.images.shape[1:]:
        raise ValueError(f"{synthetic.source or 'the set'}: images are {synthetic.images.shape[1:]} (H×W×C) but the "
                         f"dataset's are {data.train.images.shape[1:]}")
    if len(synthetic) == 0 or synthetic.labels.min() < 0 or synthetic.labels.max() >= data.train.num_classes:
        raise ValueError(f"{synthetic.source or 'the set'}: needs images labelled 0..{data.train.num_classes - 1}")
    trained = train_classifier(synthetic.images, synthetic.labels, data.val.images, data.val.labels,
                               data.train.num_classes, train, seed=seed, hooks=hooks)
    return evaluate(trained.model, data.test.images, data.test.labels)


def prescreen_by_default(spec: DatasetSpec) -> bool:
    """Whether a score job pre-screens unless told otherwise: when its classifiers are cheap to train."""
    return spec.size <= CHEAP_PRESCREEN_SIZE or resolve_device("auto").type == "cuda"


@dataclass
class CasScores:
    """One pre-screen classifier: what it learned from and how it scored on the real test split."""
    name: str  # the set's name, or REAL_ONLY
    set_id: str  # "<run id>/<set name>" (data.synthetic.set_id); "" for the real-only reference
    images: int  # training images
    # CLASSIFICATION_METRICS -> test score in [0, 1]; {} when not measured
    scores: dict[str, float] = field(default_factory=dict)
    message: str = ""  # why it was not measured
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"name": self.name, "set_id": self.set_id, "images": self.images, "scores": self.scores,
                "message": self.message, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: dict) -> "CasScores":
        return cls(str(d["name"]), str(d["set_id"]), int(d["images"]),
                   _every_metric(d["scores"]) if d["scores"] else {}, str(d["message"]), float(d["seconds"]))

    @classmethod
    def load(cls, path: Path) -> "CasScores":
        return _load(path, cls.from_dict)


@dataclass
class Prescreen:
    """A score job's pre-screen: `artifacts/prescreen.json`."""
    train: TrainConfig  # the classifiers' settings and budget
    test_images: int  # the real test split they were scored on
    trivial: Trivial  # always predicting the training split's majority class
    real: CasScores  # the same classifier trained on the real training split
    sets: list[CasScores]
    cached: list[str] = field(default_factory=list)  # ["real-only classifier"] when its result came from the cache

    def of(self, key: str) -> CasScores | None:
        """The pre-screen of the set with id `key`; None when it was not in this job."""
        return next((s for s in self.sets if s.set_id == key), None)

    def table_rows(self) -> list[dict]:
        """One row per classifier: each set, the real-only reference, then the majority class; a metric
        is None where a set was not measured, and its note says why."""
        trivial = CasScores(f"always {self.trivial.majority_class}", "", 0, self.trivial.scores,
                            "the trivial classifier: always the training split's majority class")
        real = replace(self.real, message="the same classifier trained on the real training split")
        return [{"trained on": s.name, "images": s.images,
                 **{METRIC_LABELS[m]: s.scores.get(m) for m in CLASSIFICATION_METRICS}, "note": s.message}
                for s in [*self.sets, real, trivial]]

    def to_dict(self) -> dict:
        return {"train": self.train.to_dict(), "test_images": self.test_images, "trivial": self.trivial.to_dict(),
                "real": self.real.to_dict(), "sets": [s.to_dict() for s in self.sets], "cached": list(self.cached)}

    @classmethod
    def from_dict(cls, d: dict) -> "Prescreen":
        trivial = Trivial(str(d["trivial"]["majority_class"]), _every_metric(d["trivial"]["scores"]))
        return cls(TrainConfig.from_dict(d["train"]), int(d["test_images"]), trivial,
                   CasScores.from_dict(d["real"]), [CasScores.from_dict(s) for s in d["sets"]],
                   [str(part) for part in d.get("cached", [])])

    def save(self, path: Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> "Prescreen":
        """The pre-screen in `path`; a missing, unreadable or malformed file is a ValueError naming it."""
        return _load(path, cls.from_dict)


def _every_metric(scores: dict) -> dict[str, float]:
    """CLASSIFICATION_METRICS -> score, from a file: a KeyError when one is missing."""
    return {m: float(scores[m]) for m in CLASSIFICATION_METRICS}


def _load(path: Path, build):
    """`build(json in path)`, with any failure reported as a ValueError that names the file."""
    try:
        return build(json.loads(Path(path).read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError,
            AttributeError) as e:
        raise ValueError(f"{path} is not a readable pre-screen file: {type(e).__name__}: {e}") from None


def prescreen_budget(steps: int | None = None) -> TrainConfig:
    """The study's classifier settings at the pre-screen budget (`steps` optimizer steps when given)."""
    return CAS_BUDGET if steps is None else CAS_BUDGET.replace(steps=steps)


def prescreen_sets(dataset: Dataset, sets: list[str], budget: TrainConfig = CAS_BUDGET,
                   hooks: Hooks = NO_HOOKS) -> Prescreen:
    """Train one classifier on the real training split (or take its result from the cache), then one on
    each set saved at the paths `sets`, all at `budget`, and score each on the real test split. A set that
    does not fit the dataset gets a message instead of scores. Each classifier is a part of one progress
    bar (`hooks.part`; by `expected_costs` unless the caller made one bar of a larger job); with
    `hooks.checkpoints`, each finished classifier's result is kept there (`prescreen_<i>.json`) and an
    unfinished one resumes from its own folder."""
    sources = [None, *sets]  # None: the real training split
    if hooks.stage is None:
        hooks = one_bar(hooks, expected_costs(dataset, sets, budget))
    results, cached = [], []
    for i, path in enumerate(sources):
        part = hooks.part(stage_name(i, path, len(sources)))
        part.progress(0, 1, "starting", force=True)
        if path is None:
            result, from_cache = cached_real_cas(dataset, budget, lambda: _kept(part, i, partial(real_cas, dataset,
                                                                                                   budget)))
            cached += ["real-only classifier"] * from_cache
        else:
            result = _kept(part, i, partial(set_cas, path, dataset, budget))
        part.progress(1, 1, "cached" if path is None and cached else "done", force=True)
        results.append(result)
        hooks.event(type="prescreen", index=i, name=result.name, message=result.message, **result.scores)
    hooks.progress(1, 1, f"pre-screened {len(sets)} set(s)", force=True)
    return Prescreen(budget, len(dataset.test),
                     Trivial.of(dataset.train.labels, dataset.test.labels, dataset.class_names),
                     results[0], results[1:], cached)


def stage_name(index: int, path: str | None, count: int) -> str:
    return f"pre-screen {index + 1}/{count} {REAL_ONLY if path is None else Path(path).name}"


def expected_costs(dataset: Dataset, sets: list[str], budget: TrainConfig = CAS_BUDGET) -> dict[str, float]:
    """About how long each classifier of `prescreen_sets` takes on a 2-core CPU (seconds, by stage name, in
    order); the real-only one costs nothing when its result is in the cache."""
    one = budget.steps * STEP_S * budget.batch_size / 64 * (dataset.train.size / 28) ** 2
    sources = [None, *sets]
    return {stage_name(i, path, len(sources)): 0.0 if path is None and real_cache_path(dataset, budget).exists()
            else one for i, path in enumerate(sources)}


def real_cache_path(dataset: Dataset, budget: TrainConfig, seed: int = 0) -> Path:
    """Where the real-only classifier's result on exactly `dataset`'s images at `budget` is cached."""
    import torch  # loaded by the classifier anyway; its thread count is part of the key

    digest = hashlib.sha1(json.dumps([CACHE_RECIPE, budget.to_dict(), seed, resolve_device(budget.device).type,
                                      torch.get_num_threads(), dataset.class_names]).encode())
    for split in (dataset.train, dataset.val, dataset.test):
        digest.update(str(split.images.shape).encode())
        digest.update(split.images.tobytes())
        digest.update(split.labels.astype("int64").tobytes())
    return cache_dir() / "prescreen" / f"{slug(dataset.spec.label)}-{digest.hexdigest()[:20]}.json"


def cached_real_cas(dataset: Dataset, budget: TrainConfig, measure) -> tuple[CasScores, bool]:
    """(the real-only classifier's result, whether it came from the cache): from the cache when it holds a
    readable one, else `measure()`, then kept there."""
    path = real_cache_path(dataset, budget)
    if path.exists():
        try:
            return CasScores.load(path), True
        except ValueError as e:
            print(f"cache: {e}; measuring the real-only classifier again", file=sys.stderr, flush=True)
    result = measure()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, result.to_dict())
    return result, False


def real_cas(dataset: Dataset, budget: TrainConfig, hooks: Hooks = NO_HOOKS) -> CasScores:
    started = time.time()
    scores = classification_accuracy_score(dataset.train, dataset, budget, hooks=hooks)
    return CasScores(REAL_ONLY, "", len(dataset.train), {m: scores[m] for m in CLASSIFICATION_METRICS},
                     seconds=round(time.time() - started, 2))


def set_cas(path: str, dataset: Dataset, budget: TrainConfig, hooks: Hooks = NO_HOOKS) -> CasScores:
    """The pre-screen of the set saved at `path`, or why it cannot have one."""
    started = time.time()
    meta = read_meta(path)
    name, key = meta.get("name") or Path(path).stem, set_id(path)
    try:
        synthetic = load_set(path)
    except ValueError as e:
        return CasScores(name, key, 0, message=str(e))
    problem = incompatibility(meta, dataset.spec, dataset.train.channels, dataset.train.num_classes) or \
        class_mismatch(synthetic.class_names, dataset.class_names)
    if problem:
        return CasScores(name, key, len(synthetic), message=f"{name}: {problem}")
    try:
        scores = classification_accuracy_score(replace(synthetic, source=name), dataset, budget, hooks=hooks)
    except ValueError as e:  # its images or labels do not fit the dataset's
        return CasScores(name, key, len(synthetic), message=str(e))
    return CasScores(name, key, len(synthetic), {m: scores[m] for m in CLASSIFICATION_METRICS},
                     seconds=round(time.time() - started, 2))


def class_mismatch(names: list[str], expected: list[str]) -> str:
    """Why a set's class names are not the dataset's ("" when they are); a name that is only its class
    index (a set saved without names) fits any class."""
    if all(n == str(k) or (k < len(expected) and n == expected[k]) for k, n in enumerate(names)):
        return ""
    return f"its classes ({', '.join(names)}) are not the dataset's ({', '.join(expected)})"


def _kept(hooks: Hooks, index: int, measure) -> CasScores:
    """`measure(hooks)`, its result kept in `hooks.checkpoints` so that a resumed job skips it; the
    classifier checkpoints in a folder of its own, removed once the result is kept."""
    if hooks.checkpoints is None:
        return measure(hooks)
    done = hooks.checkpoints / f"prescreen_{index}.json"
    if done.exists():
        return CasScores.load(done)
    folder = hooks.checkpoints / f"prescreen_{index}"
    folder.mkdir(parents=True, exist_ok=True)
    result = measure(replace(hooks, checkpoints=folder))
    atomic_write_json(done, result.to_dict())
    shutil.rmtree(folder)
    return result
