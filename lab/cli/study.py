"""`python -m lab study <config.json>`: run an augmentation study headless and print its verdicts.

The config file holds StudyConfig fields (see lab/study/); an unknown key is an error that
names it. A "preset" key ("quick" or "paper") fills in the preset's defaults first (its reference
arms, its budget), "recipes" (generator names) adds one recipe arm per generator, trained inside
each seed, and "synthetic_sets" (set ids or .npz paths) adds one fixed-set arm per set; any other
key overrides the preset. The dataset is the file's, else `--dataset`/`--size`, else the one the
synthetic sets were made from (by their provenance), else DermaMNIST at 28 px. Before anything is
queued the fixed sets are checked (`lab.study.leaks.check_sets`): a leaky set is refused with a message
and a non-zero exit, unless its arm allows the leak.
"""
from __future__ import annotations

import json
from pathlib import Path

from data.config import ConfigError
from data.datasets import DatasetSpec, load_dataset
from lab.cli import follow
from lab.engine import jobs
from lab.engine.eta import estimate
from lab.engine.runs import Run
from lab.study.config import (BATCHED_MODES, GENERATORS, GROUP_MEMBERS, PRESETS, StudyConfig, filtered_arms, preset,
                              recipe_arms, synthetic_arms)
from lab.study.leaks import check_sets, dataset_of_sets
from lab.study.pilot import Budget, PilotConfig, apply_budget, budgets, read_pilot
from lab.study.power import DEFAULT_DIFFERENCE, seed_plan
from lab.study.report import yardsticks
from lab.study.summary import expected_interval, read_summary
from metrics.curation import CurationRule


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("study")
    p.add_argument("config", nargs="?", type=Path, help="study config JSON (StudyConfig fields, or a preset)")
    p.add_argument("--preset", choices=PRESETS, help="start from a preset (overridden by the config file)")
    p.add_argument("--dataset", help="MedMNIST flag (default: the synthetic sets' dataset, else dermamnist)")
    p.add_argument("--size", type=int, help="image size in pixels (default: the synthetic sets', else 28)")
    p.add_argument("--recipe", action="append", default=[], choices=GENERATORS, metavar="GENERATOR",
                   help="add a 'real + <generator> recipe' arm: the generator trained inside each seed on that "
                        f"seed's real subset (repeatable; one of {', '.join(GENERATORS)})")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="add a filtered twin of every recipe arm: only the generated images that pass this rule, "
                        "scored inside each seed against its real subset (repeatable; min_confidence=X, "
                        "min_realism=Y, drop_copies=true)")
    p.add_argument("--synthetic", action="append", default=[], metavar="SET",
                   help="add a 'real + synthetic' arm for this fixed set: a set id (<run id>/<set name>) or an "
                        ".npz path (repeatable)")
    p.add_argument("--allow-leak", action="store_true",
                   help="run the --synthetic sets even when their generator saw real training images the "
                        "classifier does not see (every result of those arms says so)")
    p.add_argument("--detect", type=float, default=100 * DEFAULT_DIFFERENCE, metavar="POINTS",
                   help="the difference in the primary metric the study should detect (80%% power), in points; the "
                        "command says how many seeds that takes and how long they would run here (default %(default)g)")
    p.add_argument("--steps", type=int, metavar="N",
                   help="optimizer steps per arm (overrides the preset's and the file's)")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="seeds 0 to N-1 (overrides the preset's and the file's); --detect says how many a difference "
                        "takes")
    p.add_argument("--batched", choices=BATCHED_MODES,
                   help="train the (arm, seed)s as batched groups of up to %d, and a recipe's per-class GANs of "
                        "that many seeds as one stack: on, off, or auto (CUDA only, where it pays)" % GROUP_MEMBERS)
    p.add_argument("--fraction", type=float, metavar="F",
                   help="real training fraction (overrides the preset's and the file's; the preset's batch stays)")
    p.add_argument("--pilot", action="store_true",
                   help="instead of the study, run a learning-curve pilot of its baseline over larger step budgets and "
                        "training fractions, and print the --steps and --fraction at which the baseline clears the "
                        "trivial classifier")
    p.add_argument("--pilot-seeds", type=int, default=2, metavar="N",
                   help="the pilot: the study's first N seeds per budget (default %(default)s)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--detach", action="store_true", help="queue the study and return at once")
    p.set_defaults(func=cmd_study)


def study_config(overrides: dict, preset_name: str | None = None, synthetic: list[str] = (),
                 recipes: list[str] = (), allow_leak: bool = False, dataset: str | None = None,
                 size: int | None = None, filter_rule: CurationRule | None = None) -> StudyConfig:
    """Resolve a config file's dict (with optional preset, recipes and synthetic_sets) into a StudyConfig; with
    `filter_rule`, every unfiltered recipe arm gets a filtered twin."""
    config = _study_config(overrides, preset_name, synthetic, recipes, allow_leak, dataset, size)
    return config.replace(arms=[*config.arms, *filtered_arms(config.arms, filter_rule)]) if filter_rule else config


def _study_config(overrides: dict, preset_name: str | None, synthetic: list[str], recipes: list[str],
                  allow_leak: bool, dataset: str | None, size: int | None) -> StudyConfig:
    overrides = dict(overrides)
    name = overrides.pop("preset", None) or preset_name
    sets = [*overrides.pop("synthetic_sets", []), *synthetic]
    generators = [*overrides.pop("recipes", []), *recipes]
    spec = study_dataset(overrides.pop("dataset", None), dataset, size, sets)
    added = [*recipe_arms(generators, spec.size), *synthetic_arms(sets, allow_leak)]
    if name:
        base = preset(name, spec, overrides.get("train_fraction"), sets, generators, allow_leak).to_dict()
        if "arms" in overrides and added:
            overrides["arms"] = [*overrides["arms"], *[a.to_dict() for a in added]]
        if "train" in overrides:
            overrides["train"] = {**base["train"], **overrides["train"]}
        return StudyConfig.from_dict({**base, **overrides})
    config = StudyConfig.from_dict({**overrides, "dataset": spec.to_dict()})
    return config.replace(arms=[*config.arms, *added]) if added else config


def study_dataset(given: dict | None, flag: str | None, size: int | None, sets: list[str]) -> DatasetSpec:
    """The config file's dataset, else the flags', else the synthetic sets' (by provenance), else the default."""
    if given is not None:
        return DatasetSpec.from_dict(given, where="StudyConfig.dataset")
    made_from = dataset_of_sets(sets) or DatasetSpec()
    if flag or size:
        return made_from.replace(name=flag or made_from.name, size=size or made_from.size)
    return made_from


def cmd_study(args) -> int:
    if args.config is None and not args.preset:
        raise ValueError("give a study config JSON or --preset quick|paper")
    overrides = read_config_file(args.config) if args.config else {}
    overrides.pop("kind", None)
    try:
        rule = CurationRule.from_dict(dict(CurationRule.parse_setting(pair) for pair in args.filter)) \
            if args.filter else None
        config = study_config(overrides, args.preset, args.synthetic, args.recipe, args.allow_leak, args.dataset,
                              args.size, rule)
        if args.steps is not None or args.fraction is not None:
            budget = Budget(config.train.steps if args.steps is None else args.steps,
                            config.train_fraction if args.fraction is None else args.fraction)
            config = StudyConfig.from_dict(apply_budget(config, budget).to_dict())  # checked: a bad value is named
        if args.seeds is not None:
            config = StudyConfig.from_dict({**config.to_dict(), "seeds": list(range(args.seeds))})
        if args.batched is not None:
            config = StudyConfig.from_dict({**config.to_dict(), "batched": args.batched})
    except ConfigError as e:
        raise ConfigError(f"{args.config or 'study'}: {e}") from None
    if args.pilot:
        return cmd_pilot(config, min(args.pilot_seeds, len(config.seeds)), args.detach)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    flags = check_sets(config, load_dataset(config.dataset))
    for arm, flag in flags.items():
        print(f"caution, arm '{arm}': {flag}")
    print(expected_interval(len(config.seeds), config.dataset, config.train_fraction, config.primary_metric).text)
    if len(config.seeds) < 3:
        print(f"warning: {len(config.seeds)} seed(s); with fewer than 3 an interval is too wide to tell most "
              f"differences from noise")
    print(estimate("study", config.to_dict()).text)
    print_seed_plan(config, args.detect / 100)
    run = jobs.submit("study", config.to_dict(), name=config.preset or "study")
    print(f"{run.id}: queued at {run.path}")
    if args.detach:
        return 0
    code = follow(run)
    print_summary(run)
    return code


def cmd_pilot(study: StudyConfig, seeds: int, detach: bool) -> int:
    """Queue a learning-curve pilot of the study's baseline; unless detached, follow it and print the flags."""
    pilot = PilotConfig(study=study, seeds=seeds)
    ladder = budgets(pilot)
    print(f"pilot: the baseline '{study.baseline.name}' on {seeds} seed(s), up to {len(ladder)} budgets from "
          f"{ladder[0].steps} steps at fraction {ladder[0].fraction} to {ladder[-1].steps} steps at fraction "
          f"{ladder[-1].fraction}, cheapest first, until one clears the trivial classifier")
    run = jobs.submit("study-pilot", pilot.to_dict(), name="pilot")
    print(f"{run.id}: queued at {run.path}")
    if detach:
        return 0
    code = follow(run)
    result = read_pilot(run.artifacts)
    if result is not None:
        for row in result.tried:
            print(f"  {row['steps']:>6} steps, fraction {row['fraction']:<8} ({row['images']} images): "
                  f"{row['metric']['mean']:.3f} on validation{'  clears' if not row['short_of'] else ''}")
        print(result.text)
        if result.budget is not None:
            print(f"flags: {result.budget.flags}")
    return code


def print_seed_plan(config: StudyConfig, difference: float) -> None:
    """How many seeds detect `difference` in the primary metric, and what that many would cost here."""
    if not 0 < difference < 1:
        raise ValueError(f"--detect takes points between 0 and 100; got {100 * difference:g}")
    plan = seed_plan(config.dataset, config.train_fraction, config.primary_metric, difference)
    print(plan.text(len(config.seeds)))
    if plan.seeds is not None and plan.seeds != len(config.seeds):
        more = config.replace(seeds=list(range(plan.seeds)))
        print(f"With {plan.seeds} seeds (--seeds {plan.seeds}): "
              f"{estimate('study', more.to_dict()).text}")


def read_config_file(path: Path) -> dict:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON config ({e})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected an object of StudyConfig settings")
    return config


def print_summary(run: Run) -> None:
    summary = read_summary(run)
    if summary is None:
        return
    metric = summary.primary_metric
    print(f"\n{metric} on the real test split (mean [95% interval] over seeds {summary.seeds}):")
    print(yardsticks(summary))
    for arm in summary.arms:
        m = arm.metrics[metric]
        print(f"  {arm.arm:40s} {m.mean:.4f} [{m.lo:.4f}, {m.hi:.4f}]")
        print(f"    {arm.verdict}")
    if summary.cannot_judge:
        print("To find a budget at which it can judge: the same command with --pilot (a learning-curve pilot of "
              "the baseline; it prints the --steps and --fraction to use).")
    print(f"report: {run.artifacts / 'report.html'}")
