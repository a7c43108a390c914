"""Recipe arms: a generator per seed, trained on exactly that seed's real subset."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from data.datasets import Dataset
from data.imageset import ImageSet
from data.provenance import digest, fingerprints, leak_report
from data.subset import SeedSubset
from gans import SINGLE_IMAGE
from gans.config import GanConfig
from gans.single_image import choose_seeds
from gans.stack import GanStackConfig, stackable
from lab.provenance_check import member_file, verified_provenance
from lab.study.config import GROUP_MEMBERS, RECIPE_SET_FILES, ArmConfig, StudyConfig
from lab.study.leaks import held_out_prints


def images_per_class(arm: ArmConfig, counts: np.ndarray) -> int:
    """How many images of every class a class-balanced generator must make for `arm` on a subset of `counts`."""
    if arm.mix == "balance":
        return max(1, int(counts.max() - counts.min()))
    return max(1, math.ceil(arm.ratio * counts.sum() / len(counts)))


def generator_runs(study: StudyConfig, data: Dataset,
                   subsets: dict[int, SeedSubset]) -> dict[str, tuple[str, str, dict]]:
    """The recipes' generator runs, "<recipe key>|<seed>" -> (job kind, run name, config): one per distinct
    recipe and seed, making as many images per class as the most demanding arm that uses it draws, each
    handed its seed's subset (`subsets`, `StudyConfig.subsets`) as indices."""

    runs = {}
    for seed in study.seeds:
        real = subsets[seed].of(data.train)
        for recipe, arms in study.recipes():
            per_class = max(images_per_class(arm, real.class_counts()) for arm in arms)
            seed_indices = [] if recipe.generator not in SINGLE_IMAGE else \
                subsets[seed].at(choose_seeds(real, recipe.seeds_per_class, seed))
            kind, config = recipe.job(study.dataset, subsets[seed], per_class, seed_indices)
            runs[f"{recipe.key}|{seed}"] = (kind, f"{recipe.key}-s{seed}", config)
    return runs


def generator_children(planned: dict[str, tuple[str, str, dict]], stack: bool, members: int = GROUP_MEMBERS
                       ) -> tuple[dict[str, tuple[str, str, dict]], dict[str, tuple[str, str]]]:
    """The child runs that make the sets of `planned` (`generator_runs`), "key" -> (job kind, run name, config),
    and for every planned key the child that makes its set and that set's file name. With `stack`, each recipe's
    per-class GANs of all seeds train as gan-stack runs of at most `members` (gans/stack.py); every other
    generator run is a child of its own."""
    children, made_by, stacks = {}, {}, {}
    for key, (kind, name, config) in planned.items():
        if stack and kind == "gan" and stackable(GanConfig.from_dict(config)):
            stacks.setdefault(key.rsplit("|", 1)[0], []).append(key)
        else:
            children[key], made_by[key] = (kind, name, config), (key, RECIPE_SET_FILES[kind])
    for recipe, keys in stacks.items():
        for i in range(0, len(keys), members):
            chunk, child = keys[i:i + members], f"{recipe}|stack {i // members}"
            configs = [GanConfig.from_dict(planned[key][2]) for key in chunk]
            children[child] = ("gan-stack", f"{recipe}-stack{i // members}", GanStackConfig(members=configs).to_dict())
            made_by.update({key: (child, member_file("synthetic.npz", k)) for k, key in enumerate(chunk)})
    return children, made_by


def check_recipe_set(path: Path, subset: ImageSet, data: Dataset, exact: bool) -> None:
    """A recipe generator must have learned from the seed's subset only (a GAN: from exactly all of it),
    by the fingerprints its set records, verified against its run (the study made that run in its own
    runs folder: `path` is `<runs>/<kind>/<run id>/artifacts/<set>.npz`); otherwise the study stops here,
    naming the set."""
    provenance, trained_on = verified_provenance(path, Path(path).resolve().parents[3])
    report = leak_report(provenance, trained_on, fingerprints(subset.images), *held_out_prints(data))
    if not report.known or report.outside_subset or report.in_val or report.in_test or \
            (exact and digest(trained_on) != digest(fingerprints(subset.images))):
        raise RuntimeError(f"recipe generator set {path}: {report.text}; it must learn from the seed's subset only")


