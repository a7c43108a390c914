"""Job kind "study": the augmentation study (its arms on one seed each are "study-arm" runs: study_arm.py).

Config: StudyConfig. It checks the fixed synthetic sets (refusing a leaky one), trains
each recipe's generator once per seed on that seed's real subset ("gan", "singan" or "gpnn" children; batched,
the per-class GANs of up to GROUP_MEMBERS seeds as one "gan-stack" child: gan_stack.py),
queues one study-arm child per (arm, seed) (or, batched, one study-group child per GROUP_MEMBERS of them:
study_group.py), drives them to the end, and writes report.csv,
results.csv, report.html and, last, summary.json into artifacts/.
"""
from __future__ import annotations

from classifier.evaluate import Trivial
from data.datasets import Dataset, load_dataset
from data.files import read_json
from data.subset import SeedSubset
from data.synthetic import set_id
from lab.engine.children import create_children, run_children
from lab.engine.eta import Estimate
from lab.engine.runs import Run
from lab.study.arm_runs import arm_runs_of
from lab.study.config import RECIPE_SET_FILES, StudyConfig, arm_groups, arm_runs
from lab.study.estimate import study_estimate
from lab.study.leaks import check_sets
from lab.study.recipes import check_recipe_set, generator_children, generator_runs
from lab.study.report import write_report
from lab.study.summary import write_summary
from lab.study.verdicts import summarize

CONFIG = StudyConfig
GENERATOR_PROGRESS = 100  # a generator child's share of the study's progress bar, in percent of it done


def run(run: Run) -> None:
    study = StudyConfig.from_dict(run.settings)
    root = run.path.parent.parent
    data = load_dataset(study.dataset)
    flags = check_sets(study, data, root)
    subsets = study.subsets(data.train)  # drawn once; every generator and classifier of a seed gets its indices
    recipe_sets = train_generators(run, study, data, subsets)
    plan = arm_runs(study, subsets, recipe_sets)
    if study.batches_arms():
        groups = arm_groups(plan)
        children = create_children(run, "study-group", groups)
        run_children(run, children, study.train.steps, describe=group_describer(groups))
    else:
        children = create_children(run, "study-arm", plan)
        run_children(run, children, study.train.steps, describe=lambda key: key.replace("|", " · seed "))
    total = len(children) * study.train.steps
    run.progress(total, total, message="aggregating", force=True)
    arms = arm_runs_of(run)
    results = [read_json(arms[key].artifacts / "result.json") for key in plan]
    trivial = Trivial.of(subsets[study.seeds[0]].of(data.train).labels, data.test.labels, data.class_names)
    summary = summarize(study, results, data.class_names, trivial, flags, study_run=str(run.path))
    write_report(run.artifacts, summary, results)
    write_summary(run.artifacts, summary)  # last: its presence means the study is complete


def train_generators(run: Run, study: StudyConfig, data: Dataset, subsets: dict[int, SeedSubset]) -> dict[str, str]:
    """Train every recipe's generator of every seed as child runs (per-class GANs stacked when the study is
    batched); "<recipe key>|<seed>" -> the set it made, checked to come from exactly that seed's real subset."""
    planned = generator_runs(study, data, subsets)
    runs, made_by = generator_children(planned, stack=study.batches_arms())
    children = {}
    for kind in (*RECIPE_SET_FILES, "gan-stack"):
        group = {key: (name, config) for key, (job, name, config) in runs.items() if job == kind}
        if group:
            made = create_children(run, kind, group)
            run_children(run, made, GENERATOR_PROGRESS, describe=describe_generator)
            children.update(made)
    sets = {}
    for key, (child, set_file) in made_by.items():
        path = children[child].artifacts / set_file
        seed = int(key.rsplit("|", 1)[1])
        check_recipe_set(path, subsets[seed].of(data.train), data, exact=planned[key][0] == "gan")
        sets[key] = set_id(path)
    return sets


def group_describer(groups: dict[str, tuple[str, dict]]):
    """How the progress message names a study-group child of `groups` (`arm_groups`: keys "group <i>" from 0):
    "group 2 of 3 (10 arm runs as one)"."""
    def describe(key: str) -> str:
        return f"group {int(key.split()[1]) + 1} of {len(groups)} ({len(groups[key][1]['members'])} arm runs as one)"
    return describe


def describe_generator(key: str) -> str:
    """How the progress message names a generator child: "<recipe key>|<seed>" or "<recipe key>|stack <i>"."""
    recipe, which = key.rsplit("|", 1)
    return f"generator {recipe} · {which if which.startswith('stack') else 'seed ' + which}"


def estimate(settings: dict) -> Estimate:
    return study_estimate(StudyConfig.from_dict(settings))
