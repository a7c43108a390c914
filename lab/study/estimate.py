"""How long a study will take: its parts, each paced by its own past runs (lab.engine.eta)."""
from __future__ import annotations

from dataclasses import replace

from data.datasets import load_dataset
from data.imageset import ImageSet
from gans import SINGLE_IMAGE
from gans.config import GanConfig
from gans.stack import GanStackConfig, stackable
from lab.engine import executors
from lab.engine.eta import Estimate, Part, merge, pace_key, part
from lab.study.config import GROUP_MEMBERS, ArmConfig, StudyConfig, arm_groups, arm_runs
from lab.study.recipes import images_per_class
from metrics.curation import expected_seconds as scoring_seconds


def study_estimate(study: StudyConfig) -> Estimate:
    """The generator runs and classifier runs of `study`, in rounds of the child runs that run side by side."""
    parts = tuple(study_parts(study))
    return Estimate(parts, executors.child_workers(max(p.count for p in parts)))


def study_parts(study: StudyConfig) -> list[Part]:
    """A study's generator runs (one per recipe and seed) and its classifier runs (one per arm and seed, a
    filtered arm's with its filter's scoring). A batched study's stacks and groups are paced by past stacks and
    groups like them; without any, by their members' pace one at a time (what they cost on a CPU)."""
    train = load_dataset(study.dataset).train
    subsets = study.subsets(train)
    batched = study.batches_arms()
    parts = []
    for recipe, _ in study.recipes():  # a recipe's runs differ only in their seed: one pace
        kind, settings = recipe.job(study.dataset, subsets[study.seeds[0]], images_per_class=1,
                                    seed_indices=list(range(recipe.seeds_per_class * train.num_classes)))
        stacks = stack_parts(settings, len(study.seeds)) if batched and kind == "gan" else []
        parts.extend(stacks or [part(kind, settings, jobs=len(study.seeds))])
    planned_sets = {f"{recipe.key}|{seed}": "planned" for recipe, _ in study.recipes() for seed in study.seeds}
    plan = arm_runs(study, subsets, planned_sets)
    groups = [part("study-group", settings) for _, settings in arm_groups(plan).values()] if batched else []
    if groups and all(g.past_runs for g in groups):
        return merge(parts + groups)
    arms = {arm.name: arm for arm in study.arms}
    by_pace: dict[str | None, list[tuple[dict, float]]] = {}
    for key, (_, settings) in plan.items():
        name, seed = key.rsplit("|", 1)
        scoring = filter_seconds(study, arms[name], subsets[int(seed)].of(train))
        by_pace.setdefault(pace_key("study-arm", settings), []).append((settings, scoring))
    for group in by_pace.values():
        runs = part("study-arm", group[0][0], jobs=len(group))
        # A filtered arm's past runs pace it, scoring included; the rule of thumb adds the scoring itself.
        parts.append(runs if runs.past_runs else replace(runs, seconds=runs.seconds + sum(s for _, s in group)))
    return merge(parts)


def stack_parts(settings: dict, seeds: int) -> list[Part]:
    """A per-class GAN recipe's `seeds` generator runs (GAN config `settings`) as the gan-stack runs a batched
    study makes of them, when past stacks of their sizes pace them all; else none."""
    config = GanConfig.from_dict(settings)
    if not stackable(config):
        return []
    sizes = [min(GROUP_MEMBERS, seeds - i) for i in range(0, seeds, GROUP_MEMBERS)]
    stacks = [part("gan-stack", GanStackConfig(members=[config] * size).to_dict()) for size in sizes]
    return stacks if all(s.past_runs for s in stacks) else []


def filter_seconds(study: StudyConfig, arm: ArmConfig, real: ImageSet) -> float:
    """The rule of thumb for a filtered arm's scoring on one seed's `real` subset: its class classifier and
    critics (metrics.curation), by their steps and folds; 0 for an arm without a filter."""
    if arm.filter is None:
        return 0.0
    return scoring_seconds(len(real), generated_images(study, arm, real), study.dataset.size, arm.filter_scoring)


def generated_images(study: StudyConfig, arm: ArmConfig, real: ImageSet) -> int:
    """How many images a recipe arm's generator makes on one seed (lab/study/recipes.py generator_runs)."""
    recipe = arm.recipe
    if recipe.generator in SINGLE_IMAGE:
        return recipe.seeds_per_class * real.num_classes * recipe.variations
    sharing = next(arms for r, arms in study.recipes() if r.key == recipe.key)
    return max(images_per_class(a, real.class_counts()) for a in sharing) * real.num_classes
