"""`python -m lab …`: everything the app can do, headless.

Core commands (runs, sets, run, worker) live here; each family adds its own in a `lab/cli_<family>.py`
module that defines `add_commands(subparsers)`. A family module is imported only when one of its
commands runs (most load torch, which takes seconds), so `runs list`, `datasets`, `--help` or a
worker never wait for it: FAMILY_COMMANDS names each command's module and its line in `--help`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

from data.text import clean_text
from lab import mirrors
from lab.engine import jobs, worker
from lab.engine.runs import ACTIVE_STATES, UNREADABLE, Run, find_run, list_runs, load_object

MANAGE_ACTIONS = ["rename", "tag", "note", "delete"]
FAMILY_COMMANDS = {  # command: (the module that defines it, its line in `python -m lab --help`)
    "datasets": ("lab.cli.data", "list MedMNIST files and imported folders, and where they are"),
    "import-folder": ("lab.cli.data", "import an image folder (<class>/ or <split>/<class>/) as a job"),
    "train-gan": ("lab.cli.gan", "train DCGAN / WGAN-GP / ACGAN / SNGAN as a job"),
    "sample": ("lab.cli.gan", "draw images from a finished GAN run (or a generator.pt)"),
    "singan": ("lab.cli.singan", "train SinGAN on one image, or per class on k seed images of a dataset"),
    "gpnn": ("lab.cli.singan", "GPNN variations (no training, seconds) of one image, or per class of k seed images"),
    "score": ("lab.cli.score", "score synthetic sets (set ids, npz paths or run ids) against the real training split"),
    "study": ("lab.cli.study", "run an augmentation study (reference arms vs generator arms, several seeds)"),
    "demo": ("lab.cli.demo", "queue a demo for a class (GPNN of the OCT scans, a DCGAN quick, its score), once"),
    "cluster": ("lab.cli.cluster", "the executor (LAB_EXECUTOR), the Ray cluster's nodes and resources, "
                                   "and the lab's jobs on it"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    mirrors.attach()  # every run this process writes (a worker's job, a status it marks) is mirrored
    try:
        return args.func(args) or 0
    except BrokenPipeError:  # `runs list | head`: the reader has what it wanted and left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail too
        return 0
    except (ValueError, LookupError, OSError) as e:  # a bad setting, an unknown run, a file or disk that fails
        print(f"error: {clean_text(str(e), lines=True)}", file=sys.stderr)  # it may quote a name from disk
        return 1


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser for `argv`: the core commands, and the family command argv names, its module imported;
    without one, every family command by name and summary only (for `--help`), importing nothing."""
    parser = argparse.ArgumentParser(prog="python -m lab", description="GAN Augmentation Lab")
    sub = parser.add_subparsers(metavar="command")

    p = sub.add_parser("worker", help="(internal) run one job in this process")
    p.add_argument("run_dir")
    p.set_defaults(func=lambda a: worker.main(a.run_dir))

    p = sub.add_parser("runs", help="list runs, or show / cancel / resume one, or move a queued one to the front")
    p.add_argument("action", nargs="?", default="list",
                   choices=["list", "show", "cancel", "resume", "front", *MANAGE_ACTIONS])
    p.add_argument("run", nargs="?", help="run id, id prefix or path")
    p.add_argument("--kind", help="only runs of this kind")
    add_manage_arguments(p)
    p.set_defaults(func=cmd_runs)
    add_sets_command(sub)

    p = sub.add_parser("run", help="run a job from a config.json (as written in a run directory)")
    p.add_argument("config", type=Path)
    p.add_argument("--detach", action="store_true", help="queue it and return at once")
    p.set_defaults(func=cmd_run)

    command = argv[0] if argv else None
    if command in FAMILY_COMMANDS:
        module, summary = FAMILY_COMMANDS[command]
        importlib.import_module(module).add_commands(sub)
        sub.choices[command].description = sub.choices[command].description or summary
    elif command not in sub.choices:
        for name, (_, summary) in FAMILY_COMMANDS.items():
            sub.add_parser(name, help=summary)
    return parser


def cmd_runs(args) -> int:
    if args.action in MANAGE_ACTIONS:
        return manage_run(args)
    if args.action == "list":
        runs = list_runs(kind=args.kind)
        if not runs:
            print("no runs yet")
        for run in runs:
            print(describe(run))
        return 0
    if not args.run:
        raise ValueError(f"'runs {args.action}' needs a run id")
    run = find_run(args.run)
    if args.action == "show":
        status = run.status()
        print(json.dumps({"path": str(run.path), "status": status, "note": jobs.state_note(run, status),
                          "config": run.config}, indent=2))
        return 0
    if args.action == "cancel":
        jobs.cancel(run)
    elif args.action == "resume":
        jobs.resume(run)
    elif args.action == "front":
        jobs.move_to_front(run)
    print(state_line(run))
    return 0


def state_line(run: Run) -> str:
    """"<run id>: <state>", with the run's error or its note (where it waits in the queue) if it has one."""
    status = run.status()
    detail = status.get("error") or jobs.state_note(run, status)
    return f"{run.id}: {status['state']}" + (f" ({detail})" if detail else "")


def cmd_run(args) -> int:
    config = load_object(args.config.read_bytes(), str(args.config))
    kind = config.pop("kind", None)
    if not kind:
        raise ValueError(f"{args.config} has no 'kind' field")
    config.pop("parent", None)  # a run reproduced from a child run's config.json stands on its own
    from lab.engine.eta import estimate  # loads torch: only for this command

    settings = jobs.job_kind(kind).config.from_dict(config).to_dict()  # a bad setting is refused here
    print(estimate(kind, settings).text)
    run = jobs.submit(kind, config)
    print(f"{run.id}: queued at {run.path}")
    return 0 if args.detach else follow(run)


def follow(run) -> int:
    """Print a run's progress until it ends; exit code 0 only if it finished."""
    last = ""
    while True:
        status = run.status()
        line = progress_line(status)
        if line != last and sys.stdout.isatty():
            print("\r" + line.ljust(100), end="", flush=True)
        elif line != last:
            print(line, flush=True)
        last = line
        if status.get("state") not in ACTIVE_STATES:
            break
        time.sleep(1)
    if sys.stdout.isatty():
        print()
    state = run.status()
    print(f"{run.id}: {state.get('state')}" + (f" ({state['error']})" if state.get("error") else ""))
    if state.get("state") == "failed":
        print(f"see {run.log_path}")
    return 0 if state.get("state") == "done" else 1


def progress_line(status: dict) -> str:
    p = status.get("progress")
    if not p:
        return status["state"]
    done, total = p["done"], p["total"]
    bar = "#" * min(30, 30 * done // max(total, 1))
    eta = f" ETA {p['eta_s']:.0f}s" if p.get("eta_s") is not None else ""
    return f"[{bar:<30}] {done}/{total} {p.get('message', '')}{eta}"


def describe(run) -> str:
    """One line of `runs list`: id, kind, state, share done and the run's name (the user's, else what it
    is in words); an unreadable run says why instead."""
    from lab.engine.manage import label

    status = run.status()
    p = status.get("progress")
    pct = f"{100 * p['done'] / p['total']:5.1f}%" if p and p["total"] else "      "
    line = f"{run.id:44s} {run.kind:10s} {status['state']:10s} {pct}"
    return f"{line}  {status['error']}" if status["state"] == UNREADABLE else f"{line}  {label(run)}"


# --- rename, tag, note, delete: runs and synthetic sets (lab/engine/manage.py) ------------------------------

def add_manage_arguments(parser: argparse.ArgumentParser) -> None:
    """What rename|tag|note|delete take besides the run or set."""
    parser.add_argument("words", nargs="*", help="rename: the new name; tag: tags to add; note: the note's text")
    parser.add_argument("--untag", action="append", default=[], metavar="TAG", help="tag: remove this tag")
    parser.add_argument("--force", action="store_true", help="delete even when other runs use it")


def add_sets_command(sub) -> None:
    p = sub.add_parser("sets", help="list synthetic sets, or rename / tag / note / delete / curate one")
    p.add_argument("action", nargs="?", default="list", choices=["list", *MANAGE_ACTIONS, "curate"])
    p.add_argument("set", nargs="?", help='set id ("<run id>/<set name>"), or its npz path in the runs folder')
    p.add_argument("--all", action="store_true", help="list: include duplicates")
    add_manage_arguments(p)
    curate = p.add_argument_group("curate (a job: scores every image, then writes a new set of those the rule keeps)")
    curate.add_argument("--drop-copies", action="store_true", help="drop suspected copies of real images")
    curate.add_argument("--min-confidence", type=float, default=0.0, metavar="X",
                        help="keep images a real-data classifier gives their label with probability >= X")
    curate.add_argument("--min-realism", type=float, default=0.0, metavar="Y",
                        help="keep images a cross-fitted real-vs-synthetic critic calls real with probability >= Y")
    curate.add_argument("--name", default="curated", help="name of the curated set")
    curate.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="scoring settings (lab.curation's CurationConfig: folds, steps, copy_quantile, seed)")
    curate.add_argument("--detach", action="store_true", help="queue the job and return at once")
    p.set_defaults(func=cmd_sets)


def manage_run(args) -> int:
    if not args.run:
        raise ValueError(f"'runs {args.action}' needs a run id")
    return manage_target(find_run(args.run), args)


def cmd_sets(args) -> int:
    from lab.engine import manage
    from lab.sets import list_sets, owned_set

    if args.action == "list":
        sets = list_sets(duplicates=args.all)
        if not sets:
            print("no synthetic sets yet")
        for s in sets:
            tags = manage.meta(s.path)["tags"]
            tagged = f"  [{', '.join(tags)}]" if tags else ""
            print(f"{s.id:60s} {s.meta.get('count', '?'):>6} images  {s.name}{tagged}")
        return 0
    if not args.set:
        raise ValueError(f"'sets {args.action}' needs a set id or path")
    if args.action == "curate":
        return curate_set(args)
    return manage_target(owned_set(args.set), args)


def curate_set(args) -> int:
    """Queue a curation job for the set `args.set` with the rule its flags give; follow it unless detached."""
    from lab.curation import KIND, CurateConfig, curated_set, parent_set
    from lab.sets import set_id
    from metrics.curation import CurationConfig, CurationRule

    rule = CurationRule(min_confidence=args.min_confidence, min_realism=args.min_realism, drop_copies=args.drop_copies)
    if rule == CurationRule():
        raise ValueError("'sets curate' needs a rule: --drop-copies, --min-confidence X and/or --min-realism Y")
    scoring = CurationConfig.from_dict(dict(CurationConfig.parse_setting(pair) for pair in args.settings))
    config = CurateConfig(set=set_id(args.set), rule=rule, name=args.name, scoring=scoring)
    parent_set(config.set)  # a set it cannot score is refused now, not after its turn in the queue
    run = jobs.submit(KIND, config.to_dict())
    print(f"{run.id}: queued at {run.path} (curating {config.set}: {rule.text})")
    if args.detach:
        return 0
    code = follow(run)
    if code == 0:
        print(curated_set(run, args.name))
    return code


def manage_target(target, args) -> int:
    """rename | tag | note | delete a run (a Run) or a set (its npz path in the runs folder)."""
    from lab.engine import manage
    from data.synthetic import set_id

    what = f"run {target.id}" if isinstance(target, Run) else f"set {set_id(target)}"
    if args.action == "rename":
        manage.rename(target, " ".join(args.words))
        print(f"{what}: named '{manage.meta(target)['name']}'")
    elif args.action == "tag":
        tags = manage.tag(target, add=args.words, remove=args.untag)
        print(f"{what}: tags {', '.join(tags) or '(none)'}")
    elif args.action == "note":
        manage.note(target, " ".join(args.words))
        print(f"{what}: note saved")
    else:
        for path in manage.delete(target, force=args.force):
            print(f"deleted {path}")
    return 0
