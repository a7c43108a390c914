"""One (arm, seed) of a study: its training set, its classifier, its test; or several, trained batched."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from classifier.batched import Member, train_classifiers
from classifier.evaluate import CLASSIFICATION_METRICS, evaluate
from classifier.train import Augment, TrainResult, train_classifier
from data.augment import apply, build_pipeline, default_pipeline
from data.datasets import Dataset, load_dataset
from data.files import atomic_save, atomic_write_json, read_json
from data.hooks import NO_HOOKS, Hooks
from data.imageset import ImageSet
from data.provenance import digest, fingerprints
from data.subset import take_indices
from lab.sets import resolve_set
from lab.study.config import ArmConfig, ArmRunConfig
from lab.study.leaks import load_synthetic
from metrics.curation import CurationConfig, CurationRule, drop_reasons, kept_per_class, score_set, select
from metrics.memorization import memorization
from metrics.pairing import nearest_neighbours

FILTER_FILE = "filter.json"  # in an arm's checkpoints: what its filter kept, for a resume


def training_set(arm: ArmConfig, real: ImageSet, synthetic: ImageSet | None, seed: int) -> tuple[ImageSet, np.ndarray]:
    """The arm's training images and a bool per image: True where it is synthetic."""
    kind = arm.kind_of
    if not kind.generated:
        return real, np.zeros(len(real), dtype=bool)
    rng = np.random.default_rng([seed, 1])
    if arm.mix == "balance":
        target = real.class_counts().max()
        pick = []
        for label, have in enumerate(real.class_counts()):
            pool = np.flatnonzero(synthetic.labels == label)
            want = min(len(pool), target) if kind.synthetic_only else min(len(pool), target - have)
            pick.append(rng.choice(pool, size=max(0, want), replace=False))
        pick = np.sort(np.concatenate(pick)).astype(np.int64)
    else:
        want = min(len(synthetic), max(1, round(arm.ratio * len(real))))
        pick = np.sort(rng.choice(len(synthetic), size=want, replace=False))
    chosen = synthetic.take(pick)
    if kind.synthetic_only:
        return ImageSet(chosen.images, chosen.labels, real.class_names, "train", chosen.source), \
            np.ones(len(chosen), dtype=bool)
    images = np.concatenate([real.images, chosen.images])
    labels = np.concatenate([real.labels, chosen.labels])
    is_synthetic = np.concatenate([np.zeros(len(real), bool), np.ones(len(chosen), bool)])
    return ImageSet(images, labels, real.class_names, "train", f"{real.source}+{chosen.source}"), is_synthetic


def standard_augment(arm: ArmConfig, dataset_name: str) -> Augment | None:
    """A standard-augmentation arm's albumentations pipeline as a loop callback, else None."""
    if not arm.kind_of.augmented:
        return None
    names = default_pipeline(dataset_name) if arm.augment is None else arm.augment
    pipeline = build_pipeline(names, strength=arm.augment_strength, p=arm.augment_p)
    return lambda images, seed: apply(pipeline, images, seed)


def copy_rate(synthetic: np.ndarray, subset: ImageSet, heldout: ImageSet) -> float:
    """Share of the synthetic images (uint8 N×H×W×C) that are suspected copies of the real `subset`:
    closer to it than 99% of real held-out images are (metrics/memorization.py)."""
    images = ImageSet(synthetic, np.zeros(len(synthetic), np.int64), subset.class_names, "synthetic")
    memo = memorization(nearest_neighbours(images, subset).any_distance,
                        nearest_neighbours(heldout, subset).any_distance)
    return float(memo.suspected.mean())


def filtered(synthetic: ImageSet, real: ImageSet, rule: CurationRule, scoring: CurationConfig,
             hooks: Hooks = NO_HOOKS) -> tuple[ImageSet, dict]:
    """The images of `synthetic` that pass `rule`, scored against the seed's real subset `real` and nothing else
    (so the filter adds no leak), and what it kept (result.json's "filter"). What it kept is saved in
    `hooks.checkpoints`, so a resumed arm trains on exactly the images it started with."""
    saved = hooks.checkpoints / FILTER_FILE if hooks.checkpoints is not None else None
    kept = read_json(saved, default=None) if saved is not None else None
    if not isinstance(kept, dict) or len(kept.get("keep", [])) != len(synthetic):
        hooks.event(type="stage", stage="filter", rule=rule.text)
        scores = score_set(synthetic, real, scoring, replace(hooks, progress=NO_HOOKS.progress))
        keep = select(scores, rule)
        kept = {"rule": rule.to_dict(), "rule_text": rule.text, "real_images": scores.real_images,
                "real_subset": digest(fingerprints(real.images)), "generated": len(synthetic),
                "kept": int(keep.sum()), "kept_per_class": kept_per_class(synthetic.labels, keep, real.num_classes),
                "dropped_because": drop_reasons(scores, rule), "keep": keep.tolist()}
        if saved is not None:
            atomic_write_json(saved, kept)
    keep = np.asarray(kept.pop("keep"), dtype=bool)
    if not keep.any():
        raise ValueError(f"filter {rule.text}: keeps none of the {len(synthetic)} generated images; an arm needs "
                         "at least one")
    return synthetic.take(np.flatnonzero(keep)), kept


@dataclass
class ArmOutcome:
    """What one (arm, seed) produced; `save_outcome` writes each part to its file."""
    trained: TrainResult  # the selected classifier (best.pt) and its training record
    result: dict  # result.json: test and validation metrics, steps, history (+ copy_rate for recipe arms)
    composition: dict  # composition.json: image counts per split, the real subset's digest
    seen: dict[str, np.ndarray]  # data_seen.npz: fingerprints of the images drawn, validated and tested on


@dataclass
class ArmData:
    """One (arm, seed)'s data, ready to train on: its training set and the splits it is judged on."""
    data: Dataset
    real: ImageSet  # the seed's real subset
    train: ImageSet  # what the classifier trains on: the real subset, plus synthetic images for some arms
    is_synthetic: np.ndarray  # bool per training image
    kept: dict | None  # what the arm's filter kept (result.json's "filter"), if it has one


def arm_data(config: ArmRunConfig, hooks: Hooks = NO_HOOKS, root: Path | None = None) -> ArmData:
    """The arm's training set on its seed (a filter is applied here, its choice saved in `hooks.checkpoints`);
    `root` is the runs folder a set id is looked up in."""
    data = load_dataset(config.dataset)
    real = take_indices(data.train, config.train_indices) if config.train_indices else \
        data.train.stratified_subset(config.train_fraction, config.seed)
    synthetic = load_synthetic(resolve_set(config.synthetic_set, root), real) if config.synthetic_set else None
    kept = None
    if config.arm.filter is not None:
        synthetic, kept = filtered(synthetic, real, config.arm.filter, config.arm.filter_scoring, hooks)
    train, is_synthetic = training_set(config.arm, real, synthetic, config.seed)
    hooks.event(type="stage", stage="train", train_images=len(train), synthetic=int(is_synthetic.sum()))
    return ArmData(data, real, train, is_synthetic, kept)


def train_arm(config: ArmRunConfig, hooks: Hooks = NO_HOOKS, root: Path | None = None) -> ArmOutcome:
    """Train one arm on one seed (resumable through `hooks.checkpoints`) and test it once; `root` is the
    runs folder a set id is looked up in."""
    prepared = arm_data(config, hooks, root)
    val, train = prepared.data.val, prepared.train
    augment = standard_augment(config.arm, config.dataset.name)
    trained = train_classifier(train.images, train.labels, val.images, val.labels, prepared.data.train.num_classes,
                               config.train, seed=config.seed, augment=augment, hooks=hooks)
    hooks.progress(trained.steps, config.train.steps, message="testing", force=True)
    return arm_outcome(config, prepared, trained)


def train_arms(configs: list[ArmRunConfig], hooks: Hooks = NO_HOOKS, root: Path | None = None) -> list[ArmOutcome]:
    """Train several (arm, seed)s of one budget as one batched computation (classifier/batched.py) and test
    each once; resumable through `hooks.checkpoints` (each member's filter choice in a folder of its own)."""
    prepared = [arm_data(config, member_hooks(hooks, k), root) for k, config in enumerate(configs)]
    members = [Member(p.train.images, p.train.labels, c.seed, standard_augment(c.arm, c.dataset.name), c.train.balance)
               for c, p in zip(configs, prepared)]
    val = prepared[0].data.val
    trained = train_classifiers(members, val.images, val.labels, prepared[0].data.train.num_classes,
                                configs[0].train, hooks)
    hooks.progress(configs[0].train.steps, configs[0].train.steps, message="testing", force=True)
    return [arm_outcome(c, p, t) for c, p, t in zip(configs, prepared, trained)]


def member_hooks(hooks: Hooks, k: int) -> Hooks:
    """Member k's hooks in a group: its own checkpoint folder; its events say which member it is."""
    folder = None
    if hooks.checkpoints is not None:
        folder = hooks.checkpoints / f"member-{k}"
        folder.mkdir(parents=True, exist_ok=True)
    return replace(hooks, checkpoints=folder, event=lambda **fields: hooks.event(member=k, **fields))


def arm_outcome(config: ArmRunConfig, prepared: ArmData, trained: TrainResult) -> ArmOutcome:
    """Test the selected classifier once and record what the arm saw."""
    arm, train, is_synthetic = config.arm, prepared.train, prepared.is_synthetic
    val, test = prepared.data.val, prepared.data.test
    metrics = evaluate(trained.model, test.images, test.labels)
    drawn = trained.drawn
    seen = {"train": fingerprints(train.images[drawn]), "train_synthetic": is_synthetic[drawn],
            "val": fingerprints(val.images), "test": fingerprints(test.images)}
    composition = {
        "train": {"images": len(train), "real": int((~is_synthetic).sum()), "synthetic": int(is_synthetic.sum()),
                  "drawn": int(drawn.sum()), "drawn_synthetic": int((drawn & is_synthetic).sum()),
                  "real_subset": digest(fingerprints(prepared.real.images)),
                  "class_counts": train.class_counts().tolist()},
        "val": {"images": len(val), "synthetic": 0, "class_counts": val.class_counts().tolist()},
        "test": {"images": len(test), "synthetic": 0, "class_counts": test.class_counts().tolist()},
    }
    result = {"arm": arm.name, "kind": arm.kind, "seed": config.seed, "steps": trained.steps,
              "images_seen": trained.images_seen, "best_step": trained.best_step,
              "train_seconds": round(trained.seconds, 2), "threads": torch.get_num_threads(), "test": metrics,
              "val": {k: trained.best_val[k] for k in CLASSIFICATION_METRICS}, "history": trained.history}
    if arm.kind_of.recipe:
        result["copy_rate"] = copy_rate(train.images[is_synthetic], prepared.real, val)
    if prepared.kept is not None:
        result["filter"] = prepared.kept
    return ArmOutcome(trained, result, composition, seen)


def save_outcome(outcome: ArmOutcome, folder: Path) -> None:
    """An arm's files: data_seen.npz, composition.json, best.pt and, last, result.json (its presence means done)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save(folder / "data_seen.npz", lambda tmp: np.savez_compressed(tmp, **outcome.seen))
    atomic_write_json(folder / "composition.json", outcome.composition)
    atomic_save(folder / "best.pt", lambda tmp: torch.save(outcome.trained.model.state_dict(), tmp))
    atomic_write_json(folder / "result.json", outcome.result)
