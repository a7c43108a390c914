"""`python -m lab …`: everything the app can do, headless.

Core commands (runs, run, worker) live here; each family adds its own in a `lab/cli_<family>.py`
module that defines `add_commands(subparsers)`. The family modules are imported only for a
command that is not a core one, so `runs list` or a worker never waits for torch to load.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from lab import jobs, worker
from lab.runs import ACTIVE_STATES, find_run, list_runs

FAMILY_COMMANDS = ["lab.cli_data", "lab.cli_gan", "lab.cli_singan", "lab.cli_score", "lab.cli_study"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except (ValueError, LookupError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser for `argv`: the core commands, and the family commands unless argv names a core one."""
    parser = argparse.ArgumentParser(prog="python -m lab", description="GAN Augmentation Lab")
    sub = parser.add_subparsers(metavar="command")

    p = sub.add_parser("worker", help="(internal) run one job in this process")
    p.add_argument("run_dir")
    p.set_defaults(func=lambda a: worker.main(a.run_dir))

    p = sub.add_parser("runs", help="list runs, or show / cancel / resume one")
    p.add_argument("action", nargs="?", default="list", choices=["list", "show", "cancel", "resume"])
    p.add_argument("run", nargs="?", help="run id, id prefix or path")
    p.add_argument("--kind", help="only runs of this kind")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("run", help="run a job from a config.json (as written in a run directory)")
    p.add_argument("config", type=Path)
    p.add_argument("--detach", action="store_true", help="queue it and return at once")
    p.set_defaults(func=cmd_run)

    if not argv or argv[0] not in sub.choices:
        for module in FAMILY_COMMANDS:
            importlib.import_module(module).add_commands(sub)
    return parser


def cmd_runs(args) -> int:
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
        print(json.dumps({"path": str(run.path), "status": run.status(), "config": run.config}, indent=2))
    elif args.action == "cancel":
        print(f"{run.id}: {jobs.cancel(run)}")
    elif args.action == "resume":
        jobs.resume(run)
        print(f"{run.id}: {run.state}")
    return 0


def cmd_run(args) -> int:
    config = json.loads(args.config.read_text())
    kind = config.pop("kind", None)
    if not kind:
        raise ValueError(f"{args.config} has no 'kind' field")
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
    p = status.get("progress") or {}
    if not p:
        return status.get("state", "?")
    done, total = p.get("done", 0), max(p.get("total", 1), 1)
    bar = "#" * int(30 * done / total)
    eta = f" ETA {p['eta_s']:.0f}s" if p.get("eta_s") is not None else ""
    return f"[{bar:<30}] {done}/{total} {p.get('message', '')}{eta}"


def describe(run) -> str:
    status = run.status()
    p = status.get("progress") or {}
    pct = f"{100 * p['done'] / max(p['total'], 1):5.1f}%" if p else "      "
    return f"{run.id:44s} {run.kind:10s} {status.get('state', '?'):10s} {pct}"
