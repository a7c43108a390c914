"""Run directories: the lab's registry on disk.

runs/<kind>/<run_id>/
  config.json    the full config, written once
  status.json    queued | running | done | failed | cancelled, pid, times, progress, error (atomic)
  events.jsonl   append-only progress; readers skip a torn last line
  checkpoints/   last.pt for resume, final weights
  samples/       sample grids over time
  artifacts/     synthetic sets, tables, figures, reports
  log.txt        the worker's stdout/stderr
"""
from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

from data.files import atomic_write_json, read_json, slug
from data.hooks import Hooks
from data.paths import runs_dir

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")  # the run has not ended yet


def process_alive(pid: int | None, start_ticks: int | None = None) -> bool:
    """True if `pid` runs and is not a zombie (and, if given, started at `start_ticks`)."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # The command name may hold spaces or parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return False
    return start_ticks is None or int(fields[19]) == start_ticks


def process_start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


class Run:
    """A handle on one run directory. Cheap to create; every read goes to disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        self.stop_requested = False  # set by the worker's SIGTERM handler
        self._last_status_write = 0.0

    # --- creation -------------------------------------------------------------------------
    @classmethod
    def create(cls, kind: str, config: dict, root: Path | None = None, name: str = "") -> "Run":
        root = Path(root or runs_dir())
        stamp = time.strftime("%Y%m%d-%H%M%S")
        suffix = f"-{slug(name)}" if name else ""
        path = root / kind / f"{stamp}{suffix}-{secrets.token_hex(2)}"
        for sub in ("checkpoints", "samples", "artifacts"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        run = cls(path)
        atomic_write_json(path / "config.json", {**config, "kind": kind})
        run.write_status("queued", created=time.time())
        return run

    # --- paths ----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.path.name

    @property
    def kind(self) -> str:
        return self.config.get("kind", self.path.parent.name)

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
        return read_json(self.path / "config.json", {}) or {}

    # --- status ---------------------------------------------------------------------------
    def raw_status(self) -> dict:
        return read_json(self.path / "status.json", {}) or {}

    def status(self) -> dict:
        """The status on disk, with a running worker that has died reported as failed."""
        status = self.raw_status()
        if status.get("state") == "running" and not process_alive(status.get("pid"), status.get("pid_start")):
            # Give a just-started worker a moment to write its own status.
            if time.time() - status.get("started", 0) > 5:
                status = {**status, "state": "failed", "dead": True,
                          "error": f"worker process {status.get('pid')} died without finishing"}
        return status

    @property
    def state(self) -> str:
        return self.status().get("state", "unknown")

    def write_status(self, state: str | None = None, **fields) -> None:
        status = self.raw_status()
        if state is not None:
            if state not in STATES:
                raise ValueError(f"unknown state {state}")
            status["state"] = state
        status.update(fields)
        status["updated"] = time.time()
        atomic_write_json(self.path / "status.json", status)

    # --- events and progress ----------------------------------------------------------------
    def log_event(self, **fields) -> None:
        line = json.dumps({"t": round(time.time(), 3), **fields}, default=float)
        with open(self.path / "events.jsonl", "a") as f:
            f.write(line + "\n")

    def events(self, type: str | None = None) -> list[dict]:
        try:
            lines = (self.path / "events.jsonl").read_text().splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line being written right now
            if type is None or event.get("type") == type:
                events.append(event)
        return events

    def progress(self, done: int, total: int, message: str = "", force: bool = False, **metrics) -> None:
        """Record progress: an event with the metrics, and (at most twice a second) status.json."""
        if metrics:
            self.log_event(type="progress", done=done, total=total, **metrics)
        now = time.time()
        if force or done >= total or now - self._last_status_write > 0.5:
            self._last_status_write = now
            status = self.raw_status()
            since = status.get("resumed", status.get("started", now))
            done_at_start = status.get("done_at_resume", 0)
            rate = (done - done_at_start) / max(now - since, 1e-6)
            eta = (total - done) / rate if rate > 0 else None
            self.write_status(progress={"done": done, "total": total, "message": message,
                                        "eta_s": None if eta is None else round(eta, 1)})

    def hooks(self) -> Hooks:
        """The callbacks a library loop takes, wired to this run's files and its cancel flag."""
        return Hooks(progress=self.progress, event=self.log_event, should_stop=lambda: self.stop_requested,
                     checkpoints=self.checkpoints, samples=self.samples)

    def __repr__(self) -> str:
        return f"Run({self.path})"


def list_runs(kind: str | None = None, root: Path | None = None) -> list[Run]:
    """Runs on disk, newest first."""
    root = Path(root or runs_dir())
    kinds = [root / kind] if kind else [p for p in root.iterdir() if p.is_dir()] if root.exists() else []
    runs = [Run(p) for k in kinds if k.exists() for p in k.iterdir() if (p / "config.json").exists()]
    return sorted(runs, key=lambda r: r.id, reverse=True)


def find_run(ref: str, root: Path | None = None) -> Run:
    """A run by path, by id, or by unique id prefix."""
    path = Path(ref)
    if (path / "config.json").exists():
        return Run(path)
    matches = [r for r in list_runs(root=root) if r.id == ref or r.id.startswith(ref)]
    if len(matches) != 1:
        raise LookupError(f"{'No' if not matches else 'More than one'} run matches '{ref}'")
    return matches[0]
