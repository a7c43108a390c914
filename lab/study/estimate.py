"""How long a study will take: its parts, each paced by its own past runs (lab.engine.eta)."""
from __future__ import annotations

from data.datasets import load_dataset
from lab.engine import executors
from lab.engine.eta import Estimate, Part, merge, pace_key, part
from lab.study.config import StudyConfig, arm_runs


def study_estimate(study: StudyConfig) -> Estimate:
    """The generator runs and classifier runs of `study`, in rounds of the child runs that run side by side."""
    parts = tuple(study_parts(study))
    return Estimate(parts, executors.child_workers(max(p.count for p in parts)))


def study_parts(study: StudyConfig) -> list[Part]:
    """A study's generator runs (one per recipe and seed) and its classifier runs (one per arm and seed)."""
    train = load_dataset(study.dataset).train
    subsets = study.subsets(train)
    parts = []
    for recipe, _ in study.recipes():  # a recipe's runs differ only in their seed: one pace
        kind, settings = recipe.job(study.dataset, subsets[study.seeds[0]], images_per_class=1,
                                    seed_indices=list(range(recipe.seeds_per_class * train.num_classes)))
        parts.append(part(kind, settings, jobs=len(study.seeds)))
    planned_sets = {f"{recipe.key}|{seed}": "planned" for recipe, _ in study.recipes() for seed in study.seeds}
    by_pace: dict[str | None, list[dict]] = {}
    for _, settings in arm_runs(study, subsets, planned_sets).values():
        by_pace.setdefault(pace_key("study-arm", settings), []).append(settings)
    parts += [part("study-arm", group[0], jobs=len(group)) for group in by_pace.values()]
    return merge(parts)
