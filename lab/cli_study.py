"""`python -m lab study <config.json>`: run an augmentation study headless and print its verdicts.

The config file holds StudyConfig fields (see lab/study.py); an unknown key is an error that
names it. A "preset" key ("quick" or "paper") fills in the preset's defaults first, and
"synthetic_sets" (a list of .npz paths) adds one "real + synthetic" arm per set; any other key
overrides the preset.
"""
from __future__ import annotations

import json
from pathlib import Path

from data.config import ConfigError
from lab import jobs
from lab.cli import follow
from lab.runs import Run
from lab.study import PRESETS, StudyConfig, preset, read_summary, synthetic_arms


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("study", help="run an augmentation study (real vs real + synthetic, several seeds)")
    p.add_argument("config", nargs="?", type=Path, help="study config JSON (StudyConfig fields, or a preset)")
    p.add_argument("--preset", choices=PRESETS, help="start from a preset (overridden by the config file)")
    p.add_argument("--synthetic", action="append", default=[], metavar="NPZ",
                   help="add a 'real + synthetic' arm for this synthetic set (repeatable)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--detach", action="store_true", help="queue the study and return at once")
    p.set_defaults(func=cmd_study)


def study_config(overrides: dict, preset_name: str | None = None, synthetic: list[str] = ()) -> StudyConfig:
    """Resolve a config file's dict (with optional preset and synthetic_sets) into a StudyConfig."""
    overrides = dict(overrides)
    name = overrides.pop("preset", None) or preset_name
    sets = [*overrides.pop("synthetic_sets", []), *synthetic]
    if name:
        base = preset(name, sets, overrides.get("dataset")).to_dict()
        if "arms" in overrides and sets:
            overrides["arms"] = [*overrides["arms"], *[a.to_dict() for a in synthetic_arms(sets)]]
        if "train" in overrides:
            overrides["train"] = {**base["train"], **overrides["train"]}
        return StudyConfig.from_dict({**base, **overrides})
    config = StudyConfig.from_dict(overrides)
    return config.replace(arms=[*config.arms, *synthetic_arms(sets)]) if sets else config


def cmd_study(args) -> int:
    if args.config is None and not args.preset:
        raise ValueError("give a study config JSON or --preset quick|paper")
    overrides = read_config_file(args.config) if args.config else {}
    overrides.pop("kind", None)
    try:
        config = study_config(overrides, args.preset, args.synthetic)
    except ConfigError as e:
        raise ConfigError(f"{args.config or 'study'}: {e}") from None
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    run = jobs.submit("study", config.to_dict(), name=config.preset or "study")
    print(f"{run.id}: queued at {run.path}")
    if args.detach:
        return 0
    code = follow(run)
    print_summary(run)
    return code


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
    for arm in summary.arms:
        m = arm.metrics[metric]
        print(f"  {arm.arm:40s} {m.mean:.4f} [{m.lo:.4f}, {m.hi:.4f}]")
        print(f"    {arm.verdict}")
    print(f"report: {run.artifacts / 'report.html'}")
