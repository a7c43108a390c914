"""Run directories: the lab's registry on disk.

runs/<kind>/<run_id>/
  config.json    the full config, written once
  status.json    queued | running | done | failed | cancelled, pid, times, progress, error (atomic)
  events.jsonl   append-only progress; readers skip a torn last line (and any line that is not an object)
  cancel_requested  present while the run is asked to stop at its next step (jobs.cancel)
  checkpoints/   last.pt for resume, final weights
  samples/       sample grids over time
  artifacts/     synthetic sets, tables, figures, reports
  log.txt        the worker's stdout/stderr
"""
from __future__ import annotations

import json
import math
import os
import reprlib
import secrets
import socket
import time
from collections import deque
from functools import lru_cache
from pathlib import Path
from typing import Callable, Protocol, TypedDict

import psutil

from data.files import atomic_write_json, atomic_write_text, slug
from data.hooks import Hooks
from data.paths import runs_dir

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")  # the run has not ended yet
UNREADABLE = "unreadable"  # the state Run.status() gives a run whose status.json cannot be read; never written
LAB_KEYS = ("kind", "parent")  # what the lab adds to a job's settings in config.json
CANCEL_FLAG = "cancel_requested"  # a file, not a status field: a status writer cannot overwrite it
CANCEL_POLL_S = 1.0  # how often a running job looks for its cancel flag
ETA_WINDOW = 30  # status writes (at most two a second) over which the ETA measures the pace
MAX_NESTING = 8  # how many "parent" links `locate` follows up (children of children, never a loop)
HOST = socket.gethostname()  # this machine, as status.json's "host" names the machine a run executes on
WARM_SERVER_MODULE = "lab.cli.warm"  # a warm server's `python -m` module: it forks the workers of child runs
WARM_RUN_FD = 900  # the descriptor a forked worker holds its run directory open on: its proof of identity
RAY_NODE_VAR = "LAB_RAY_NODE"  # set in a worker's environment by the Ray task that started it: the task's node id


class RunFileError(ValueError):
    """A run file (config.json, status.json) that cannot be read; the message names the file."""


class Progress(TypedDict, total=False):
    done: int  # steps done, >= 0
    total: int  # steps in all, >= 0
    message: str
    eta_s: float | None  # seconds left at the recent pace; None until the pace is known


class Status(TypedDict, total=False):
    """status.json as `parse_status` returns it: every field it holds has this type, or is None."""
    state: str  # one of STATES, or UNREADABLE (then `error` says why)
    pid: int  # the process the run executes in, > 0
    pid_start: int  # that process's start time in hundredths of a second since the epoch (psutil)
    host: str  # the machine that process runs on (its hostname); absent in runs of older labs: this machine
    ray_node: str  # the Ray node id of that process, when a Ray task started it
    executor: str  # "local" or "ray": what started that process
    created: float  # the times are seconds since the epoch
    queued_at: float
    started: float
    finished: float
    updated: float
    progress: Progress
    error: str
    dead: bool  # it was running and its process is gone, so it failed
    side_by_side: int  # how many of its child runs it runs at once in workers it starts (lab/engine/children.py)
    after: list  # the run folders it waits for: the queue starts it once every one of them is done (jobs.submit)
    elsewhere: str  # never written: `Run.status` gives the host of a run running on another machine


def _is_int(value, least: int) -> bool:
    return type(value) is int and value >= least


def _is_time(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _is_progress(value) -> bool:
    return (isinstance(value, dict) and _is_int(value.get("done"), 0) and _is_int(value.get("total"), 0)
            and isinstance(value.get("message", ""), str) and (value.get("eta_s") is None or _is_time(value["eta_s"])))


FIELD_CHECKS = {  # status field: (test, what it must be)
    "pid": (lambda value: _is_int(value, 1), "a process id"),
    "pid_start": (lambda value: _is_int(value, 0), "a start time in hundredths of a second"),
    **{name: (_is_time, "a time in seconds") for name in ("created", "queued_at", "started", "finished", "updated")},
    "progress": (_is_progress, "an object of done and total (whole numbers >= 0), message and eta_s"),
    **{name: (lambda value: isinstance(value, str), "text") for name in ("error", "host", "ray_node", "executor")},
    "dead": (lambda value: isinstance(value, bool), "true or false"),
    "side_by_side": (lambda value: _is_int(value, 1), "a whole number >= 1"),
    "after": (lambda value: isinstance(value, list) and all(isinstance(path, str) for path in value),
              "a list of run folders"),
}


def read_bytes(path: Path) -> bytes:
    """The bytes of a run file; RunFileError naming it when it is missing or cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RunFileError(f"{path.name} is missing") from None
    except OSError as e:
        raise RunFileError(f"{path.name} cannot be read ({e.strerror})") from None


def load_object(data: bytes, name: str) -> dict:
    """The JSON object in `data`, the bytes of the file `name`; RunFileError saying what is wrong otherwise."""
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RunFileError(f"{name} is not UTF-8 text") from None
    except (ValueError, RecursionError) as e:
        raise RunFileError(f"{name} is not JSON ({e})") from None
    if not isinstance(value, dict):
        raise RunFileError(f"{name} holds {reprlib.repr(value)}, not a JSON object")
    return value


def read_object(path: Path) -> dict:
    """The JSON object in the run file at `path`; RunFileError naming the file otherwise."""
    return load_object(read_bytes(path), path.name)


def unreadable(reason: str) -> Status:
    return {"state": UNREADABLE, "error": reason}


def parse_status(data: bytes) -> Status:
    """The status in the bytes of a status.json; never raises.

    Bytes that are not a UTF-8 JSON object with a known state and well-typed fields (see Status)
    give {"state": "unreadable", "error": why}: one bad file makes its run unreadable, never the
    lab. Fields the lab does not know are kept as they are.
    """
    try:
        status = load_object(data, "status.json")
    except RunFileError as e:
        return unreadable(str(e))
    if status.get("state") not in STATES:
        return unreadable(f"status.json has an unknown state {reprlib.repr(status.get('state'))}")
    for field, (test, meaning) in FIELD_CHECKS.items():
        if status.get(field) is not None and not test(status[field]):
            return unreadable(f"status.json: {field} {reprlib.repr(status[field])} is not {meaning}")
    return status


# --- which process a run executes in ------------------------------------------------------------

def process_started(pid: int) -> int | None:
    """When process `pid` started, in hundredths of a second since the epoch (what status.json keeps as
    pid_start): with the pid, it names one process, never a later one that reuses the pid."""
    try:
        return round(psutil.Process(pid).create_time() * 100)
    except (psutil.Error, ValueError):
        return None


def process_start_time(pid: int) -> float | None:
    """When process `pid` started, in seconds since the epoch (to a clock tick)."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, ValueError):
        return None


def process_alive(pid: int | None, started_at: int | None = None) -> bool:
    """True if `pid` runs and is not a zombie (and, if given, started at `started_at`)."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        alive = process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
        return alive and started_at in (None, round(process.create_time() * 100))
    except (psutil.Error, ValueError):
        return False


def worker_run_dir(pid: int) -> Path | None:
    """The run directory process `pid` is the worker of, if any: the one its command line
    `... -m lab worker <run dir>` names, or, for a worker forked by a warm server (its command line
    `... -m lab.cli.warm <kind>`: lab/engine/warm.py), the directory it holds open as WARM_RUN_FD."""
    try:
        process = psutil.Process(pid)
        args = process.cmdline()
        for i in range(len(args) - 1):
            if args[i:i + 2] == ["-m", WARM_SERVER_MODULE]:
                try:  # psutil lists open files, not open directories: the descriptor's link names it
                    return Path(os.readlink(f"/proc/{pid}/fd/{WARM_RUN_FD}"))
                except OSError:  # the server itself, which runs no job
                    return None
            if args[i:i + 3] == ["-m", "lab", "worker"] and i + 3 < len(args):
                # a relative run directory is relative to the worker's working directory
                return (Path(process.cwd()) / args[i + 3]).resolve()
    except (psutil.Error, OSError, RuntimeError, ValueError):
        return None
    return None


@lru_cache(maxsize=4096)
def _worker_run_dir_of(pid: int, started_at: int) -> Path | None:
    """`worker_run_dir` of the process that `pid` and its start time name, read once per process:
    reading /proc/<pid>/cmdline takes that process's memory-map lock, and readers polling a run's
    status in a loop stalled a worker that was still importing torch (8 s became 106 s with three)."""
    return worker_run_dir(pid)


def this_process() -> dict:
    """The status fields naming the process a run executes in, when that is this process: pid,
    pid_start, host, executor ("ray" under a Ray task, which sets RAY_NODE_VAR, else "local") and ray_node."""
    pid, ray_node = os.getpid(), os.environ.get(RAY_NODE_VAR) or None
    return {"pid": pid, "pid_start": process_started(pid), "host": HOST,
            "executor": "ray" if ray_node else "local", "ray_node": ray_node}


def runs_elsewhere(status: Status) -> bool:
    """True when status.json names another machine than this one as the run's host."""
    return bool(status.get("host")) and status["host"] != HOST


def locate(run: "Run", status: Status) -> str | None:
    """Where the running `run` executes, proven from /proc, never from status.json alone.

    "worker": a worker process of its own (`python -m lab worker <run dir>`); "parent": the worker
    of a run above it (its parent, which claimed it: lab/engine/children.py; or further up, as when a
    study's generator child fans out into seed runs); "here": this very process. None when no
    live process with the recorded pid and start time is any of these: the run died, or the pid
    in status.json is stale or forged. Only a "worker" may be signalled (jobs.cancel).
    "elsewhere" when status.json names another host: this machine's /proc proves nothing about it
    (lab.engine.executors.judge_elsewhere asks Ray instead).
    """
    if runs_elsewhere(status):
        return "elsewhere"
    return locate_here(run, status)


def locate_here(run: "Run", status: Status) -> str | None:
    """`locate` on the machine the run's process runs on, whatever host status.json names."""
    pid, start = status.get("pid"), status.get("pid_start")
    if pid is None or pid <= 1 or start is None or not process_alive(pid, start):
        return None
    if pid == os.getpid():
        return "here"
    worker_of = _worker_run_dir_of(pid, start)
    if worker_of is None:
        return None
    if worker_of == run.path:
        return "worker"
    above = run.config.get("parent")
    for _ in range(MAX_NESTING):
        if not isinstance(above, str):
            return None
        if str(worker_of) == above:
            return "parent"
        try:
            above = Run(above).config.get("parent")
        except (ValueError, RuntimeError):  # a "parent" that is no path at all
            return None
    return None


class EventSink(Protocol):
    """Somewhere else a run's events go too (lab.mirrors: TensorBoard files, an MLflow server)."""

    def mirror(self, run_dir: Path, event: dict) -> None: ...

    def finish(self, run_dir: Path, state: str) -> None: ...


# The sinks every run of this process writes to: none unless attached (lab.mirrors.attach, by the
# processes that run or manage jobs), so the run directory code names no mirror.
SINKS: list[EventSink] = []


def running_elsewhere(run: "Run", status: Status) -> Status:
    """A run that status.json says runs on another host: nothing on this machine can prove it dead."""
    return {**status, "elsewhere": status["host"]}


# How `Run.status` judges a run on another host; the executors module, which can ask Ray, sets its own
# (`set_elsewhere_judge`) when it is imported, as every process that starts or cancels runs does.
elsewhere_judge: Callable[["Run", Status], Status] = running_elsewhere


def set_elsewhere_judge(judge: Callable[["Run", Status], Status]) -> None:
    global elsewhere_judge
    elsewhere_judge = judge


class Run:
    """A handle on one run directory. Cheap to create; every read goes to disk."""

    def __init__(self, path: str | Path):
        # The folders above are resolved, the run folder's own name is not: a run folder that is a
        # link stays that link (listed under its own name, never followed; see raw_status).
        absolute = Path(os.path.abspath(path))
        self.path = absolute.parent.resolve() / absolute.name
        self.stop_requested = False  # set by the worker's SIGTERM handler, or once the cancel flag is seen
        self._last_status_write = 0.0
        self._flag_checked = -math.inf
        self._pace: deque[tuple[float, int]] = deque(maxlen=ETA_WINDOW)  # (time, done) of recent status writes

    # --- creation -------------------------------------------------------------------------
    @classmethod
    def create(cls, kind: str, config: dict, root: Path | None = None, name: str = "",
               after: list["Run"] = ()) -> "Run":
        """A queued run; `after`: the runs it waits for (the queue starts it once they are all done)."""
        root = Path(root or runs_dir())
        stamp = time.strftime("%Y%m%d-%H%M%S")
        suffix = f"-{slug(name)}" if name else ""
        path = root / kind / f"{stamp}{suffix}-{secrets.token_hex(2)}"
        for sub in ("checkpoints", "samples", "artifacts"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        run = cls(path)
        # first: a run is listed, so the queue may start it, once its config.json exists
        run.write_status("queued", created=time.time(), **({"after": [str(r.path) for r in after]} if after else {}))
        atomic_write_json(path / "config.json", {**config, "kind": kind})
        return run

    # --- paths ----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.path.name

    @property
    def kind(self) -> str:
        kind = self.config.get("kind")
        return kind if isinstance(kind, str) else self.path.parent.name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    @property
    def log_path(self) -> Path:
        return self.path / "log.txt"

    @property
    def config(self) -> dict:
        """config.json: the job's settings and the keys the lab adds (LAB_KEYS); {} when it cannot be read."""
        try:
            return read_object(self.path / "config.json")
        except RunFileError:
            return {}

    @property
    def settings(self) -> dict:
        """The job's own settings: config.json without the keys the lab adds (LAB_KEYS).
        Raises RunFileError when config.json cannot be read."""
        try:
            config = read_object(self.path / "config.json")
        except RunFileError as e:
            raise RunFileError(f"run {self.id}: {e}") from None
        return {key: value for key, value in config.items() if key not in LAB_KEYS}

    # --- status ---------------------------------------------------------------------------
    def raw_status(self) -> Status:
        """status.json as written (see parse_status), without the liveness check of `status`.
        A run folder that is a link is unreadable: the lab does not follow links out of its runs folder."""
        if self.path.is_symlink():
            return unreadable(f"the run folder is a link to {os.readlink(self.path)}; the lab does not follow it")
        try:
            return parse_status(read_bytes(self.path / "status.json"))
        except RunFileError as e:
            return unreadable(str(e))

    def status(self) -> Status:
        """The status on disk, with a running run whose process is gone, or cannot be proven to be
        its worker (see `locate`), reported as failed and dead. A run running on another machine is
        judged by `elsewhere_judge` (through Ray: lab.engine.executors.judge_elsewhere): failed and dead when
        its node or its process is gone, else running, with "elsewhere" naming its host."""
        status = self.raw_status()
        if status["state"] == "running" and runs_elsewhere(status):
            return elsewhere_judge(self, status)
        if status["state"] == "running" and locate(self, status) is None:
            status = {**status, "state": "failed", "dead": True,
                      "error": f"worker process {status.get('pid')} is not running (it died, or status.json "
                               f"names a process that is not this run's worker)"}
        return status

    @property
    def state(self) -> str:
        return self.status()["state"]

    def write_status(self, state: str | None = None, **fields) -> None:
        status = self.raw_status()
        if status["state"] == UNREADABLE:
            status = {}  # a writer replaces a file that cannot be read
        if state is not None:
            if state not in STATES:
                raise ValueError(f"unknown state {state}")
            status["state"] = state
        status.update(fields)
        status["updated"] = time.time()
        atomic_write_json(self.path / "status.json", status)
        if state is not None and state not in ACTIVE_STATES:
            for sink in SINKS:
                sink.finish(self.path, state)

    # --- events and progress ----------------------------------------------------------------
    def log_event(self, **fields) -> None:
        event = {"t": round(time.time(), 3), **fields}
        with open(self.path / "events.jsonl", "a") as f:
            f.write(json.dumps(event, default=float) + "\n")
        for sink in SINKS:
            sink.mirror(self.path, event)

    def events(self, type: str | None = None) -> list[dict]:
        """The events of events.jsonl, oldest first (only those of `type`, if given). A line that is not
        a JSON object is skipped: the torn last line being written right now, or a damaged one."""
        try:
            lines = (self.path / "events.jsonl").read_bytes().splitlines()
        except OSError:
            return []
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(event, dict) and (type is None or event.get("type") == type):
                events.append(event)
        return events

    def progress(self, done: int, total: int, message: str = "", force: bool = False, **metrics) -> None:
        """Record progress: an event with the metrics, and (at most twice a second) status.json.

        The ETA in status.json comes from the pace of this process's last ETA_WINDOW status writes,
        so neither the start-up nor the time before a resume counts; None until two writes exist.
        """
        done, total = int(done), int(total)
        if metrics:
            self.log_event(type="progress", done=done, total=total, **metrics)
        now = time.time()
        if force or done >= total or now - self._last_status_write > 0.5:
            self._last_status_write = now
            self._pace.append((now, done))
            self.write_status(progress={"done": done, "total": total, "message": str(message),
                                        "eta_s": self._eta(total)})

    def _eta(self, total: int) -> float | None:
        (first_time, first_done), (last_time, last_done) = self._pace[0], self._pace[-1]
        if last_done <= first_done or last_time <= first_time:
            return None
        return round(max(total - last_done, 0) * (last_time - first_time) / (last_done - first_done), 1)

    # --- stopping -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the run to stop at its next step (jobs.cancel): the flag that `should_stop` looks for."""
        atomic_write_text(self.path / CANCEL_FLAG, f"{time.time()}\n")

    def should_stop(self) -> bool:
        """True once the run was asked to stop: SIGTERM to its worker, or its cancel flag (looked for
        at most once per CANCEL_POLL_S, so a loop may ask at every step)."""
        now = time.monotonic()
        if not self.stop_requested and now - self._flag_checked >= CANCEL_POLL_S:
            self._flag_checked = now
            self.stop_requested = (self.path / CANCEL_FLAG).exists()
            if self.stop_requested:
                print("cancel requested (flag): stopping at the next checkpoint", flush=True)
        return self.stop_requested

    def requeue(self) -> None:
        """Queue a cancelled or failed run again, its cancel flag withdrawn."""
        (self.path / CANCEL_FLAG).unlink(missing_ok=True)
        self.write_status("queued", error=None, dead=None, queued_at=time.time())

    def hooks(self) -> Hooks:
        """The callbacks a library loop takes, wired to this run's files and its cancel flag."""
        return Hooks(progress=self.progress, event=self.log_event, should_stop=self.should_stop,
                     checkpoints=self.checkpoints, samples=self.samples)

    def __repr__(self) -> str:
        return f"Run({self.path})"


def list_runs(kind: str | None = None, root: Path | None = None) -> list[Run]:
    """Runs on disk, newest first: the folders with a config.json in each kind's folder, and the links
    there, listed under their own names as unreadable (never followed). A kind's folder that is a link
    is not read: its runs are outside the runs folder."""
    root = Path(root or runs_dir())
    kinds = [root / kind] if kind else [p for p in root.iterdir() if p.is_dir()] if root.exists() else []
    runs = [Run(p) for k in kinds if k.is_dir() and not k.is_symlink() for p in k.iterdir()
            if p.is_symlink() or (p / "config.json").exists()]
    return sorted(runs, key=lambda r: r.id, reverse=True)


def find_run(ref: str, root: Path | None = None) -> Run:
    """A run of the runs folder by path, by id, or by unique id prefix.

    A path outside the runs folder is refused: cancelling or resuming it would write into, and
    start a worker for, a folder that is not one of this lab's runs.
    """
    root = Path(root or runs_dir()).resolve()
    path = Path(ref).expanduser()
    if path.is_symlink() or (path / "config.json").exists():
        run = Run(path)
        if run.path.parent.parent != root:
            raise LookupError(f"{ref} is not a run in the runs folder {root}")
        return run
    matches = [r for r in list_runs(root=root) if r.id == ref or r.id.startswith(ref)]
    if len(matches) != 1:
        raise LookupError(f"{'No' if not matches else 'More than one'} run matches '{ref}'")
    return matches[0]
