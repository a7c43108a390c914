"""Child runs: a job that fans out into runs of its own (a study's arms, SinGAN's seeds).

The parent builds every child's config first (a bad one is refused before any child is queued),
queues one run per piece of work, then drives them all to the end:
- side by side (`executors.child_workers`, by default one per core on a CPU machine): the parent
  starts a worker process for each queued child while fewer than that many run, each worker with
  an equal share of the cores, and waits (the workers are forked by a warm server past the kind's imports,
  lab/engine/warm.py, so a small child pays no start-up); the parent's own slot in the queue covers them all, so
  the queue never starts them (its status says `side_by_side`) and their workers leave the queue be.
  Neither does it after a crash: children still queued when their parent was killed wait for the
  parent's resume (`jobs.started_by_parent`), so every child runs with the share its plan gave it;
- one after another (LAB_CHILD_WORKERS=1, CUDA, Ray): a child still queued is claimed under the
  queue's lock and run inside the parent's process (with one slot the parent holds it, and a child
  left in the queue would wait for ever); under Ray the parent first lets the queue hand queued
  children to the cluster's free CPUs, each a task of its own, and runs one itself on its own CPU;
- either way a child that another worker has started is waited for;
- a failed (or unreadable) child fails the parent at once, and its running siblings are cancelled;
- a cancelled child is only that child: the parent carries on with the others, then fails with a
  message naming the cancelled ones, so the parent's results are never built from a missing piece;
- a cancelled or failed child is queued again when the parent resumes, and continues from its
  own checkpoint.
The parent's progress bar is the sum of its children's; cancelling the parent cancels them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from data.files import atomic_write_json, read_json
from data.hooks import Interrupted
from lab.engine import executors, jobs, warm
from lab.engine.runs import ACTIVE_STATES, UNREADABLE, Run, list_runs, this_process

WAIT_POLL_S = 1.0
CHILD_STOP_TIMEOUT_S = 60.0  # how long a stopping parent waits for its children's workers to save and end


def children_file(parent: Run) -> Path:
    return parent.checkpoints / "children.json"


def read_children(parent: Run) -> dict[str, Run]:
    """The parent's children by key, in the order they were created."""
    return {key: Run(path) for key, path in (read_json(children_file(parent), {}) or {}).items()}


def create_children(parent: Run, kind: str, planned: dict[str, tuple[str, dict]]) -> dict[str, Run]:
    """Queue a `kind` run for every key of `planned` (key -> (name, config)) that has none yet.

    Every config is built first (ConfigError before any child is queued). The keys and run paths
    are kept in the parent's checkpoints/children.json, so a resumed parent finds the children it
    made before instead of making new ones; each child's config names its parent, so run lists
    can show children under their parent, and so a resumed parent also finds a child it queued just
    before it was killed, before children.json named it (`_unrecorded`): it adopts that run.
    """
    for _, config in planned.values():
        jobs.job_kind(kind).config.from_dict(config)
    existing = read_children(parent)
    root = parent.path.parent.parent
    side_by_side = executors.child_workers(len(planned))
    with jobs.queue_lock(root):
        if parent.raw_status()["state"] == "queued":  # called directly (tests), not by a worker
            _mark_running(parent)
        # Read by the queue (jobs.schedule): children run side by side are started by their parent
        # alone, each with its share of the cores.
        parent.write_status(side_by_side=side_by_side)
        unrecorded = _unrecorded(parent, kind, existing) if set(planned) - set(existing) else []
        for key, (name, config) in planned.items():
            if key not in existing:
                config = {**config, "parent": str(parent.path)}
                as_written = json.loads(json.dumps({**config, "kind": kind}))  # what Run.create's config.json holds
                made = next((run for run in unrecorded if run.config == as_written), None)
                if made is not None:
                    unrecorded.remove(made)
                existing[key] = made or Run.create(kind, config, root=root, name=name)
                atomic_write_json(children_file(parent), {k: str(r.path) for k, r in existing.items()})
    if side_by_side == 1:
        jobs.schedule(root)  # free slots (LAB_MAX_JOBS > 1) start children in workers of their own
    return {key: existing[key] for key in planned}


def run_children(parent: Run, children: dict[str, Run], steps_each: int,
                 describe: Callable[[str], str] = str) -> None:
    """Drive every child to its end (see the module docstring); raise if one fails, if one was
    cancelled, or when the parent is asked to stop.

    `steps_each` is one child's progress total, so the parent's bar covers len(children) × it;
    `describe(key)` prefixes the parent's progress message while a child runs.
    """
    for child in children.values():  # a resumed parent resumes its interrupted children
        if child.state in ("cancelled", "failed"):
            child.requeue()
    total = steps_each * len(children)
    # One share of the cores for every child, from the plan alone: the numbers a child computes depend
    # on its thread count, which must not depend on which sibling finished first or on a resume.
    workers = executors.child_workers(len(children))
    threads = max(1, executors.cpu_cores() // workers)
    kinds = {child.kind for child in children.values()}
    server = (warm.WarmServer(kinds.pop(), parent.path.parent.parent, threads)
              if workers > 1 and len(kinds) == 1 and warm.enabled() else None)
    try:
        while True:
            pending = {key: child for key, child in children.items() if child.state not in ("done", "cancelled")}
            if not pending:
                break
            parent.hooks().stop_if_asked()
            statuses = {key: child.status() for key, child in pending.items()}
            for key, status in statuses.items():
                if status["state"] in ("failed", UNREADABLE):
                    child = pending[key]
                    raise RuntimeError(f"{child.kind} run {child.id} {status['state']}"
                                       + (f": {status['error']}" if status.get("error") else ""))
            if workers > 1:
                running = _start_side_by_side(pending, statuses, workers, threads, server)
                message = f"{len(running)} side by side: {', '.join(describe(key) for key in running)}"
            else:
                if executors.executor_name() == "ray":  # free CPUs of the cluster (a node may have joined) take
                    jobs.schedule(parent.path.parent.parent)  # queued children first; this process runs one
                key = next((key for key, status in statuses.items()
                            if status["state"] == "queued" and _claim(pending[key])), None)
                if key is not None:
                    others = [c for k, c in children.items() if k != key]
                    _execute(ChildRun(pending[key].path, parent, others, steps_each, total, describe(key)))
                    continue
                message = "waiting for workers"  # every pending child runs in another worker
            parent.progress(_steps_done(children.values(), steps_each), total, message=message)
            time.sleep(WAIT_POLL_S)
    except BaseException:
        for child in children.values():  # interrupted, or a child failed: its siblings stop and resume later
            if child.state in ACTIVE_STATES:
                jobs.cancel(child)
        for child in children.values():  # the parent ends after them: none still says running
            try:
                jobs.wait(child, timeout=CHILD_STOP_TIMEOUT_S, poll=0.1)
            except TimeoutError:
                pass
        raise
    finally:
        if server is not None:
            server.close()
    cancelled = [child.id for child in children.values() if child.state == "cancelled"]
    if cancelled:
        raise RuntimeError(f"{len(cancelled)} of {len(children)} child runs were cancelled ({', '.join(cancelled)}); "
                           f"resume this run to finish them")
    parent.progress(total, total, message="children done", force=True)


def _start_side_by_side(pending: dict[str, Run], statuses: dict, workers: int, threads: int,
                        server: warm.WarmServer | None) -> list[str]:
    """Start workers (of `threads` threads) for queued children, in order, while fewer than `workers`
    run: forked by the warm `server` when there is one that works, else cold; the keys running."""
    running = [key for key, status in statuses.items() if status["state"] == "running"]
    for key, child in pending.items():
        if len(running) >= workers:
            break
        with jobs.queue_lock(child.path.parent.parent):  # so no other process's schedule starts it too
            if child.raw_status()["state"] != "queued":
                continue
            if server is None or not server.start(child):
                jobs.start_local_worker(child, threads)
        running.append(key)
    return running


class ChildRun(Run):
    """A child run executed in the parent's process: it stops when it is cancelled itself (its flag)
    or when the parent is asked to stop, and its progress also moves the parent's bar."""

    def __init__(self, path, parent: Run, others: list[Run], steps_each: int, total: int, label: str):
        super().__init__(path)
        self.parent, self.others, self.steps_each, self.total, self.label = parent, others, steps_each, total, label
        self._others_done, self._others_read = 0, 0.0

    def should_stop(self) -> bool:
        return super().should_stop() or self.parent.should_stop()

    def progress(self, done, total, message="", force=False, **metrics):
        super().progress(done, total, message, force, **metrics)
        now = time.time()
        if force or now - self._others_read > 2.0:  # other children's files are read every 2 s at most
            self._others_done, self._others_read = _steps_done(self.others, self.steps_each), now
        self.parent.progress(self._others_done + done * self.steps_each // max(total, 1), self.total,
                             message=f"{self.label}: {message}", force=force)


def _steps_done(children, steps_each: int) -> int:
    done = 0
    for child in children:
        status = child.raw_status()
        progress = status.get("progress") or {}
        if status["state"] == "done":
            done += steps_each
        elif progress.get("total"):
            done += progress["done"] * steps_each // progress["total"]
    return done


def _claim(child: Run) -> bool:
    """Mark a queued child as running in this process, unless a worker took it first."""
    with jobs.queue_lock(child.path.parent.parent):
        if child.raw_status()["state"] != "queued":
            return False
        _mark_running(child)
        return True


def _unrecorded(parent: Run, kind: str, recorded: dict[str, Run]) -> list[Run]:
    """The `kind` runs whose config names `parent` that its children.json does not: made by a parent killed before
    it could record them."""
    known = {run.path for run in recorded.values()}
    since = parent.id[:len("YYYYmmdd-HHMMSS")]  # run ids start with their creation time: older runs are not read
    return [run for run in list_runs(kind, parent.path.parent.parent)
            if run.id >= since and run.path not in known and run.config.get("parent") == str(parent.path)]


def _mark_running(child: Run) -> None:
    child.write_status("running", **this_process(), started=child.raw_status().get("started") or time.time(),
                       error=None, dead=None)


def _execute(child: ChildRun) -> None:
    """Run a claimed child's job here, with the status transitions a worker would write. A child
    cancelled on its own ends here; one stopped because its parent was asked to stop re-raises."""
    try:
        jobs.job_kind(child.kind).run(child)
    except Interrupted:
        child.write_status("cancelled", finished=time.time())
        if child.parent.should_stop():
            raise
        return
    except BaseException as e:
        child.write_status("failed", error=f"{type(e).__name__}: {e}", finished=time.time())
        raise
    child.write_status("done", finished=time.time())
