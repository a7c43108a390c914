"""The job queue: run directories executed by detached worker processes.

`submit` builds the kind's config first (a bad one is refused before anything is written), writes
a queued run and calls `schedule`, which starts workers for queued runs, in queue order, while
fewer than `max_concurrent()` run. A finishing worker calls `schedule` again, so the queue drains
without any resident daemon. The disk is the only shared state.

`cancel` signals a process only when /proc proves it is the run's own worker (lab.engine.runs.locate):
the pid in a status.json could name any process. A run on another machine is reached through Ray
or its cancel flag (the runs folder is shared), never through a pid.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from filelock import FileLock

from data.paths import runs_dir
from lab.engine import executors
from lab.engine.kinds import job_kind
from lab.engine.runs import (ACTIVE_STATES, HOST, RAY_NODE_VAR, UNREADABLE, Run, Status, list_runs, locate,
                             process_started)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # lab/engine/ -> the checkout


def max_concurrent() -> int:
    return executors.slots()


def submit(kind: str, config: dict, name: str = "", root: Path | None = None, start: bool = True,
           after: list[Run] = ()) -> Run:
    """Queue a run of `kind` with `config`, its settings (without "kind").

    The kind's config is built from them first, so an unknown kind (KeyError) or a bad setting
    (ConfigError, naming it) is refused before anything is written. `after`: runs it needs the results
    of (a score of a GAN's set): it starts once they are all done, and ends failed, naming the run, when
    one of them ends otherwise (resume that run, then this one).
    """
    job_kind(kind).config.from_dict(config)
    if start:
        max_concurrent()  # a bad LAB_MAX_JOBS (ValueError naming it) is refused before anything is written
    run = Run.create(kind, config, root=root, name=name, after=after)
    if start:
        schedule(root)
    return run


@contextmanager
def queue_lock(root: Path):
    """The queue's lock: held while deciding which queued runs start, so no run starts twice."""
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / ".queue.lock"):  # an flock on Unix: released by the kernel if its holder dies
        yield


def schedule(root: Path | None = None) -> list[Run]:
    """Start workers for queued runs while there is room. Returns the runs it started."""
    root = Path(root or runs_dir())
    with queue_lock(root):
        return _start_queued(root)


def _start_queued(root: Path) -> list[Run]:
    """`schedule`, with the queue's lock held."""
    running, queued, ended = _survey(root)
    for run, fields in ended:  # record what the liveness check and the runs waited for say
        run.write_status("failed", finished=time.time(), **fields)
    starting = queued[: max(0, max_concurrent() - len(running))]
    for run in starting:
        _start_worker(run)
    return starting


def _survey(root: Path) -> tuple[list[Run], list[Run], list[tuple[Run, dict]]]:
    """The runs holding a slot, the queued runs in the order they will start (not those still waiting for
    a run: `unfinished_prerequisite`), and the runs that have failed without saying so, with the status
    fields that say it: those whose status.json still says running though their process is gone, and
    queued ones that wait for a run that has ended without finishing. Unreadable runs are in none."""
    running, queued, ended = [], [], []
    for run in list_runs(root=root):
        status = run.status()
        if status.get("dead") and run.raw_status()["state"] == "running":
            ended.append((run, {"dead": True, "error": status["error"]}))
        elif status["state"] == "running":
            if not in_parents_process(run, status):
                running.append(run)
        elif status["state"] == "queued" and not started_by_parent(run):
            waits_for = unfinished_prerequisite(status)
            if waits_for is None:
                queued.append((_queue_key(status), run))
            elif waits_for[1] not in ACTIVE_STATES:
                before, state = waits_for
                ended.append((run, {"error": f"{before.kind} run {before.id}, which it waits for, is {state}: "
                                             f"resume that run, then this one"}))
    queued.sort(key=lambda pair: pair[0])
    return running, [run for _, run in queued], ended


def unfinished_prerequisite(status: Status) -> tuple[Run, str] | None:
    """The first run that a queued run waits for (`submit(after=...)`) and that is not done, with its state;
    None when it waits for none. A run folder that is gone reads as unreadable."""
    for path in status.get("after") or []:
        before = Run(path)
        state = before.state
        if state != "done":
            return before, state
    return None


def in_parents_process(run: Run, status: Status) -> bool:
    """True for a child run its parent executes in the parent's own process (lab/engine/children.py): the
    parent's slot covers it, so it holds none of its own (under Ray: the CPU of the parent's task)."""
    parent = run.config.get("parent")
    if not isinstance(parent, str) or status.get("pid") is None:
        return False
    try:
        above = Run(parent).raw_status()
    except (ValueError, RuntimeError):  # a "parent" that is no path at all
        return False
    return all(above.get(key) == status.get(key) for key in ("pid", "pid_start", "host"))


def started_by_parent(run: Run) -> bool:
    """True for a child whose parent runs its children side by side (lab/engine/children.py): only the
    parent starts them, each with the share of the cores its plan gave them; the queue would give them
    all the cores, and an arm's numbers depend on its thread count."""
    return side_by_side_parent(run) is not None


def side_by_side_parent(run: Run) -> Run | None:
    """The parent that starts `run` itself (see `started_by_parent`), whatever that parent's state:
    running, queued again, or failed or cancelled until it is resumed (a kill -9 leaves its queued
    children queued). None when `run` has no such parent, or when its parent is done, deleted or
    unreadable: no parent will ever start it then, so the queue does rather than let it wait for ever."""
    parent = run.config.get("parent")
    if not isinstance(parent, str):
        return None
    try:
        parent_run = Run(parent)
    except (ValueError, RuntimeError):  # a "parent" that is no path at all
        return None
    status = parent_run.raw_status()
    if status["state"] in ("done", UNREADABLE) or (status.get("side_by_side") or 1) <= 1:
        return None
    return parent_run


def _queue_key(status: Status) -> float:
    """Queued runs start in the order they were queued (or made), unless one is moved to the front."""
    for key in ("queued_at", "created"):
        if status.get(key) is not None:
            return status[key]
    return 0.0


def _start_worker(run: Run) -> None:
    if executors.executor_name() == "ray":
        return executors.start_on_ray(run, on_end=schedule)  # the dispatcher starts the next once its task ended
    start_local_worker(run)


def start_local_worker(run: Run, threads: int | None = None) -> None:
    """Start a worker process on this machine for a queued run (the caller holds the queue's lock).
    `threads`: the worker's share of the cores (its torch and OpenMP threads); None: all of them."""
    run.write_status(executor="local")
    with open(run.log_path, "a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab", "worker", str(run.path)],
            cwd=PROJECT_ROOT, env=worker_env(run.path.parent.parent, threads), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    # Reap the child when it exits so a long-lived parent (the app) collects no zombies.
    threading.Thread(target=proc.wait, daemon=True).start()
    # Popen returns once the child has exec'd: its command line names the run, so locate() proves
    # it from now on, and a run that says running without such a process is dead at once.
    mark_started(run, proc.pid)


def worker_env(root: Path, threads: int | None = None) -> dict[str, str]:
    """The environment of a local worker for the runs folder `root`: this process's, without a Ray task's
    variables, with `threads` (its share of the cores) for torch and OpenMP, read as they load."""
    ray_task = (RAY_NODE_VAR, executors.TASK_PID_VAR)  # set when this process is itself a worker under Ray
    env = {key: value for key, value in os.environ.items() if key not in ray_task}
    env.update(LAB_RUNS_DIR=str(root), PYTHONUNBUFFERED="1")
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def mark_started(run: Run, pid: int) -> None:
    """Record a queued run's new worker process `pid` (one that locate() proves already) as running it,
    unless the worker reported first (it can be that fast)."""
    status = run.raw_status()
    if status["state"] != "queued":
        return
    run.write_status("running", pid=pid, pid_start=process_started(pid), host=HOST, ray_node=None,
                     started=status.get("started") or time.time())


def cancel(run: Run) -> str:
    """Stop a run; returns its state afterwards.

    A queued run is cancelled at once. A running one whose process /proc proves to be its own
    worker gets SIGTERM and saves; one executing in an ancestor's worker, in this process or on
    another machine gets its cancel flag instead and stops at its next step (signalling that
    process would stop the ancestor and every sibling). A run that a Ray task executes gets
    `ray.cancel` of its task instead, which hands its worker the same SIGTERM, and its cancel flag
    besides (Ray's interrupt can miss a task). A running run whose process cannot be proven is not
    running: it is marked failed. No other process is ever signalled.
    """
    with queue_lock(run.path.parent.parent):  # so schedule cannot start a queued run meanwhile
        status = run.status()
        if status["state"] == "queued":
            run.write_status("cancelled", finished=time.time())
            return "cancelled"
    if status.get("dead") and run.raw_status()["state"] == "running":  # what the liveness check found
        run.write_status("failed", dead=True, error=status.get("error"), finished=time.time())
    elif status["state"] == "running":
        where = locate(run, status)
        on_ray = where in ("worker", "elsewhere") and status.get("executor") == "ray"
        reached = on_ray and executors.cancel_on_ray(run)  # the task's worker got SIGTERM
        if on_ray or not reached and where != "worker":
            run.request_stop()  # under Ray also the flag: Ray's interrupt can miss a task, seen on an idle CI
        if not reached and where == "worker":
            _terminate(status["pid"])
    return run.state


def _terminate(pid: int) -> None:
    """SIGTERM to a proven worker: to its process group when it leads one of its own (as
    `_start_worker` starts it), never to this process's group."""
    try:
        group = os.getpgid(pid)
        if group == pid and group != os.getpgrp():
            os.killpg(group, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it ended meanwhile; the liveness check reports how


def resume(run: Run, root: Path | None = None) -> Run:
    """Queue a cancelled or failed run of the runs folder again; its job continues from its checkpoint."""
    root = Path(root or runs_dir()).resolve()
    if run.path.parent.parent != root:
        raise ValueError(f"{run.path} is not a run in the runs folder {root}")
    state = run.state
    if state not in ("cancelled", "failed"):
        raise ValueError(f"Only a cancelled or failed run can be resumed; {run.id} is {state}")
    parent = side_by_side_parent(run)
    if parent is not None and parent.state not in ACTIVE_STATES:
        # Queued alone, it would wait for a parent that is not coming; the parent's resume starts it with its share.
        raise ValueError(f"{run.id} is started by its parent {parent.kind} {parent.id}, which runs its children "
                         f"side by side, each with its share of the cores, and is {parent.state}: resume "
                         f"{parent.id} instead (it resumes its unfinished children)")
    with queue_lock(root):  # so no other process's `schedule` starts it first, on that process's executor
        run.requeue()
        _start_queued(root)
    return run


def wait(run: Run, timeout: float | None = None, poll: float = 0.5) -> str:
    """Block until the run leaves queued/running; returns the final state."""
    deadline = None if timeout is None else time.time() + timeout
    while run.state in ACTIVE_STATES:
        if deadline is not None and time.time() > deadline:
            raise TimeoutError(f"{run.id} still {run.state} after {timeout}s")
        time.sleep(poll)
    return run.state


def active_runs(root: Path | None = None) -> list[Run]:
    return [r for r in list_runs(root=root) if r.state in ACTIVE_STATES]


# --- the queue as a user sees it --------------------------------------------------------------------

class QueuePlace(NamedTuple):
    position: int  # 1 for the queued run that starts next
    ahead: list[Run]  # what it waits for: the runs holding a slot, then the queued runs before it
    limit: int  # how many runs may run at once (LAB_MAX_JOBS)


def queue_position(run: Run) -> QueuePlace | None:
    """Where a queued run stands in its runs folder's queue; None when it is not queued."""
    running, queued, _ = _survey(run.path.parent.parent)
    paths = [r.path for r in queued]
    if run.path not in paths:
        return None
    index = paths.index(run.path)
    return QueuePlace(index + 1, running + queued[:index], max_concurrent())


def move_to_front(run: Run) -> None:
    """Let a queued run start before every other queued run: a short job need not wait behind long ones."""
    root = run.path.parent.parent
    with queue_lock(root):
        _, queued, _ = _survey(root)
        if run.path not in [r.path for r in queued]:
            reason = waiting_for_parent(run) if run.state == "queued" else ""
            raise ValueError(f"{run.id} is not in the queue; it {reason or 'is ' + run.state}")
        run.write_status(queued_at=_queue_key(queued[0].raw_status()) - 1)


def state_note(run: Run, status: Status | None = None) -> str:
    """Why a run is not moving, in a sentence for pages and the CLI; "" when there is nothing to say.

    A queued run: "2nd in line behind study 20250101-…; one job at a time: LAB_MAX_JOBS=1".
    A queued child run side by side: "waits for its parent study 20250101-… to start it".
    A run cancelled while queued: "cancelled while queued: it never started".
    A run on another machine: "running elsewhere (host node-7)".
    """
    status = status or run.status()
    if status["state"] == "running" and status.get("elsewhere"):
        return f"running elsewhere (host {status['elsewhere']})"
    if status["state"] == "cancelled" and status.get("started") is None:
        return "cancelled while queued: it never started"
    waiting = waiting_for_parent(run) if status["state"] == "queued" else ""
    if waiting:
        return waiting
    waits_for = unfinished_prerequisite(status) if status["state"] == "queued" else None
    if waits_for is not None:
        return f"waits for {waits_for[0].kind} {waits_for[0].id} to finish (it is {waits_for[1]})"

    place = queue_position(run) if status["state"] == "queued" else None
    if place is None:
        return ""
    if not place.ahead:
        return "next to start"
    at_once = "one job at a time" if place.limit == 1 else f"{place.limit} jobs at a time"
    before = place.ahead[-1]
    return f"{_ordinal(place.position)} in line behind {before.kind} {before.id}; {at_once}: LAB_MAX_JOBS={place.limit}"


def waiting_for_parent(run: Run) -> str:
    """Why a queued child is not in the queue: its parent starts it ("waits for its parent study <id>
    to start it"), and, when that parent has ended, that resuming the parent does. "" for a run the queue starts."""
    parent = side_by_side_parent(run)
    if parent is None:
        return ""
    note = f"waits for its parent {parent.kind} {parent.id} to start it"
    state = parent.state
    return note if state in ACTIVE_STATES else f"{note} ({parent.id} is {state}: resume it)"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
