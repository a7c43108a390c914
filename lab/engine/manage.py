"""Keeping what the lab made in order: readable labels, names, tags and notes of runs and synthetic
sets, deleting them with what depends on them named first, and the series that compare runs.

A run's name, tags and note live in `meta.json` in its directory (config.json stays as the job
wrote it); a synthetic set's live in its sidecar JSON beside the npz. Nothing here imports
streamlit: the Runs page and `python -m lab runs|sets …` call the same functions.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from data.files import atomic_write_json, read_json
from data.paths import runs_dir
from data.text import NAME_LIMIT, NOTE_LIMIT, TAG_LIMIT, clean_text
from data.synthetic import set_id
from lab.engine import jobs
from lab.engine.runs import ACTIVE_STATES, Run, list_runs, locate, process_alive
from lab.sets import owned_set

if TYPE_CHECKING:
    from metrics.stats import Estimate

RUN_META = "meta.json"


class InUse(ValueError):
    """Deleting would break other things; `dependents` says what (one sentence each)."""

    def __init__(self, target: str, dependents: list[str]):
        self.dependents = dependents
        super().__init__(f"{target} is used by: " + "; ".join(dependents) + " (delete with force to go ahead)")


# --- names, tags, notes ------------------------------------------------------------------------

def meta(target: Run | Path) -> dict:
    """{"name": str, "tags": [str], "note": str} of a run or a set's npz (blank when never set).

    A set's name is its display name (the sidecar's "name", which every page shows). Cleaned and cut
    to their limits as they are read (data.text), whatever a hand-edited file holds.
    """
    stored = read_json(_meta_path(target), {})
    stored = stored if isinstance(stored, dict) else {}
    tags = stored.get("tags") if isinstance(stored.get("tags"), list) else []
    cleaned = [clean_text(str(t), TAG_LIMIT) for t in tags]
    return {"name": clean_text(str(stored.get("name") or ""), NAME_LIMIT), "tags": [t for t in cleaned if t],
            "note": clean_text(str(stored.get("note") or ""), NOTE_LIMIT, lines=True)}


def rename(target: Run | Path, name: str) -> None:
    """Give a run or set a name of the user's (a run's blank name: back to its generated label)."""
    name = _checked(name, "name", NAME_LIMIT)
    if not name and isinstance(target, Path):
        raise ValueError("A set needs a name")
    _update(target, name=name)


def tag(target: Run | Path, add: list[str] = (), remove: list[str] = ()) -> list[str]:
    """Add and remove tags (cleaned, unique, in the order added); returns the tags now."""
    remove = [clean_text(t) for t in remove]
    tags = [t for t in meta(target)["tags"] if t not in remove]
    tags += [t for t in dict.fromkeys(_checked(a, "tag", TAG_LIMIT) for a in add) if t and t not in tags]
    _update(target, tags=tags)
    return tags


def note(target: Run | Path, text: str) -> None:
    """Keep a note (its line breaks kept) with a run or set."""
    _update(target, note=_checked(text, "note", NOTE_LIMIT, lines=True))


def _checked(text: str, field: str, limit: int, lines: bool = False) -> str:
    """`text` cleaned (data.text.clean_text); ValueError when it is longer than `limit` even so."""
    cleaned = clean_text(text, lines=lines)
    if len(cleaned) > limit:
        raise ValueError(f"A {field} holds at most {limit} characters; this one has {len(cleaned)}")
    return cleaned


def _meta_path(target: Run | Path) -> Path:
    return target.path / RUN_META if isinstance(target, Run) else Path(target).with_suffix(".json")


def _update(target: Run | Path, **changes) -> None:
    if isinstance(target, Run):
        _check_own_run(target)
        if target.path.is_symlink():
            raise ValueError(f"run {target.id} is a link to {os.readlink(target.path)}, not a run folder: "
                             "the lab changes only its own runs")
        if not (target.path / "config.json").exists():
            raise FileNotFoundError(f"No run at {target.path}")
        path = target.path / RUN_META
    else:
        path = owned_set(target).with_suffix(".json")
    stored = read_json(path, {})
    atomic_write_json(path, {**(stored if isinstance(stored, dict) else {}), **changes})


def _check_own_run(run: Run, root: Path | None = None) -> None:
    """ValueError unless `run` lies in the runs folder."""
    root = Path(root or runs_dir()).resolve()
    if run.path.parent.parent != root:
        raise ValueError(f"{run.path} is not a run in the runs folder {root}: the lab changes only its own runs")


# --- labels ------------------------------------------------------------------------------------

def label(run: Run) -> str:
    """The user's name for the run, else what it is in words, e.g. "DCGAN · dermamnist · 11-29 06:12",
    "Study arm 'real + dcgan' seed 1"."""
    return meta(run)["name"] or clean_text(generated_label(run), NAME_LIMIT)  # it quotes config values: file names


def generated_label(run: Run) -> str:
    config = run.config
    kind = config.get("kind", run.path.parent.name)
    dataset = config.get("dataset") if isinstance(config.get("dataset"), dict) else {}
    data = dataset.get("name", "")
    when = started_at(run)
    if kind == "gan":
        gan = str(config.get("gan", "gan")).upper().replace("_", "-")
        return _join(gan, config.get("preset"), data, when)
    if kind == "study":
        arms, seeds = len(config.get("arms") or []), len(config.get("seeds") or [])
        return _join("Study", f"{arms} arm{'s' * (arms != 1)} × {seeds} seed{'s' * (seeds != 1)}", data, when)
    if kind == "study-arm":
        arm = config.get("arm") if isinstance(config.get("arm"), dict) else {}
        return f"Study arm '{arm.get('name', '?')}' seed {config.get('seed', '?')}"
    if kind == "gan-stack":
        members = config.get("members") if isinstance(config.get("members"), list) else []
        first = members[0] if members and isinstance(members[0], dict) else {}
        gan = str(first.get("gan", "gan")).upper().replace("_", "-")
        return f"{gan} stack: {len(members)} per-class GANs as one"
    if kind == "study-group":
        members = config.get("members") if isinstance(config.get("members"), list) else []
        return f"Study arms batched: {len(members)} (arm, seed)s as one"
    if kind in ("singan", "gpnn"):
        name = {"singan": "SinGAN", "gpnn": "GPNN"}[kind]
        if config.get("mode") == "seeds":
            return _join(f"{name} seeds", f"{config.get('seeds_per_class', '?')} per class", data, when)
        if config.get("parent"):
            return f"{name} on training image #{config.get('image_index')}"
        image = Path(config.get("image_path") or "").stem or f"{data} #{config.get('image_index')}"
        return _join(name, image, when)
    if kind == "score":
        sets = config.get("sets") or []
        return _join("Scores", f"{len(sets)} set{'s' * (len(sets) != 1)}", when)
    if kind == "sample":
        return _join(f"Export '{config.get('name', '?')}'", when)
    if kind == "import":
        return _join("Import", data or Path(dataset.get("path") or "").name, when)
    if kind == "count":
        return _join(f"Count to {config.get('steps', '?')}", when)
    return _join(kind, when)


def started_at(run: Run) -> str:
    """The run's creation time as "MM-DD HH:MM" (from its id's time stamp)."""
    try:
        return time.strftime("%m-%d %H:%M", time.strptime(run.id[:15], "%Y%m%d-%H%M%S"))
    except ValueError:
        return ""


def _join(*parts) -> str:
    return " · ".join(str(p) for p in parts if p)


def progress_text(progress: dict | None, unit: str = "") -> str:
    """A run's progress as the lab writes it everywhere: "42% · 630/1500 steps" ("" before any)."""
    if not isinstance(progress, dict):
        return ""
    try:
        done, total = int(progress.get("done", 0)), int(progress.get("total", 0))
    except (TypeError, ValueError):
        return ""
    if total <= 0:
        return ""
    count = f"{done}/{total}{' ' + unit if unit else ''}"
    return f"{min(100, int(100 * done / total))}% · {count}"


# --- what depends on what ----------------------------------------------------------------------

def sets_of(run: Run) -> list[Path]:
    """The synthetic sets (npz with a sidecar) a run holds."""
    return sorted(p for p in run.artifacts.glob("*.npz") if p.with_suffix(".json").exists())


def children_of(run: Run, root: Path | None = None) -> list[Run]:
    return [r for r in list_runs(root=root or run.path.parent.parent) if r.config.get("parent") == str(run.path)]


def set_users(path: Path, root: Path | None = None, exclude: Path | None = None) -> list[str]:
    """Sentences naming the runs that read the set at `path` (joined on set ids, so a moved runs
    folder still joins): score runs and studies (a study's arm runs are named through their study),
    outside the folder `exclude`."""
    wanted = set_id(Path(path))
    users = []
    for run in list_runs(root=root or runs_dir()):
        if exclude is not None and run.path.is_relative_to(exclude):
            continue
        config = run.config
        if run.kind == "score" and wanted in [set_id(ref) for ref in config.get("sets") or []]:
            users.append(f"scores {label(run)} ({run.id})")
        elif run.kind == "curate" and config.get("set") == wanted:
            users.append(f"curation {label(run)} ({run.id}), whose curated sets' provenance is this set's")
        elif run.kind == "study" and any(isinstance(arm, dict) and arm.get("synthetic_set")
                                         and set_id(arm["synthetic_set"]) == wanted
                                         for arm in config.get("arms") or []):
            users.append(f"study {label(run)} ({run.id})")
    return users


def dependents(target: Run | Path, root: Path | None = None) -> list[str]:
    """What deleting `target` (a run, or a set's npz) would leave without something it uses."""
    if isinstance(target, Path):
        return set_users(target, root)
    run = target
    found = []
    parent = run.config.get("parent")
    if parent:
        found.append(f"its parent run {Path(parent).name}, which collects its results")
    children = children_of(run, root)
    if children:
        found.append(f"{len(children)} child run(s) of its own, deleted with it")
    for path in sets_of(run):
        found += [f"set {path.stem}: {user}" for user in set_users(path, root, exclude=run.path)]
    generator = run.checkpoints / "generator.pt"
    for other in list_runs(root=root or run.path.parent.parent):
        if other.kind == "sample" and other.config.get("generator") == str(generator):
            found.append(f"export {label(other)} ({other.id}) drew its images from this generator")
    return found


def delete(target: Run | Path, force: bool = False, root: Path | None = None) -> list[Path]:
    """Delete a run (with its child runs) or a set (npz and sidecar) of the runs folder; returns what was
    removed. A run folder or set that is a link is removed as a link: what it points to is never touched.

    Refuses a run that is queued or running, and raises InUse naming the dependents unless `force`.
    """
    if isinstance(target, Run):
        _check_own_run(target, root)
        if target.path.is_symlink():
            target.path.unlink()
            return [target.path]
        if not (target.path / "config.json").exists():
            raise FileNotFoundError(f"No run at {target.path}")
        active = [r for r in [target, *children_of(target, root)] if r.state in ACTIVE_STATES]
        if active:
            raise ValueError(f"{label(active[0])} ({active[0].id}) is {active[0].state}: cancel it first")
        name = f"run {target.id}"
    else:
        target = owned_set(target, root)
        name = f"set {set_id(target)}"
    users = dependents(target, root)
    blocking = [u for u in users if "deleted with it" not in u]
    if blocking and not force:
        raise InUse(name, blocking)
    if isinstance(target, Path):
        removed = [target, target.with_suffix(".json")]
        for path in removed:
            path.unlink(missing_ok=True)
        return removed
    removed = [child.path for child in children_of(target, root)] + [target.path]
    for path in removed:
        _remove_run_folder(path)
    return removed


def cancel_and_delete(run: Run, force: bool = False, root: Path | None = None, timeout: float = 60) -> list[Path]:
    """Cancel a queued or running run and its active child runs, wait until they have stopped (a running one
    saves first) and their own workers have exited, then delete it as `delete` does. TimeoutError, and
    nothing deleted, when one is still stopping after `timeout` seconds."""
    _check_own_run(run, root)  # before anything is signalled
    deadline = time.time() + timeout
    family = [run, *children_of(run, root)]
    workers = []
    for member in family:
        status = member.status()
        if status["state"] == "running" and locate(member, status) == "worker":
            workers.append((status["pid"], status.get("pid_start")))
        if status["state"] in ACTIVE_STATES:
            jobs.cancel(member)
    for member in family:
        jobs.wait(member, max(0.0, deadline - time.time()))
    # a worker writes its last files (the mirrors' end) after its final state: they land before the folder goes
    while any(process_alive(pid, start) for pid, start in workers):
        if time.time() > deadline:
            raise TimeoutError(f"run {run.id} is cancelled but its worker has not exited after {timeout:g}s")
        time.sleep(0.2)
    return delete(run, force, root)


def _remove_run_folder(path: Path) -> None:
    """Remove a run folder; a link is removed itself (rmtree refuses one), and rmtree removes the links
    inside a folder without following them."""
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


# --- comparing runs ----------------------------------------------------------------------------

def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average (TensorBoard's smoothing): weight 0 keeps the values, 0.99 is very
    smooth. Debiased, so the first points are not pulled towards zero."""
    out, average = [], 0.0
    for i, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight ** (i + 1)) if weight < 1 else value)
    return out


def series(run: Run, name: str) -> tuple[list[int], list[float]]:
    """Steps and values of one number its progress events record (a loss, a metric), in order."""
    points = [(e["done"], e[name]) for e in run.events("progress")
              if isinstance(e.get(name), (int, float)) and isinstance(e.get("done"), (int, float))]
    return [int(step) for step, _ in points], [float(value) for _, value in points]


def recall_by_class(results: list[dict]) -> dict[str, list[Estimate]]:
    """Per arm, each class's test recall over the seeds: mean with its 95% t-interval.
    `results` are a study's arm results (lab.study.summary.study_results)."""
    from metrics.stats import t_interval  # scipy: loaded by a comparison, not by every page and command

    by_arm: dict[str, list[list[float]]] = {}
    for result in results:
        by_arm.setdefault(result["arm"], []).append(result["test"]["per_class_recall"])
    return {arm: [t_interval(column) for column in zip(*recalls)] for arm, recalls in by_arm.items()}
