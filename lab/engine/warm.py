"""Warm workers: a parent's child runs forked from a process already past the heavy imports.

A child run started cold is a new `python -m lab worker` that imports torch and its job kind (seconds)
before it does a few seconds of work. A parent that runs its children side by side (lab/engine/children.py)
starts one warm server instead, `python -m lab.cli.warm <kind>`, with the children's share of the cores
in its environment, as a cold worker gets it. The server imports the kind once, runs no job code of its
own, and forks one worker per child run it is sent. Each forked worker is a process of its own, as a cold one:
- it leads a session and a process group of its own, so cancel's SIGTERM reaches it alone, and it runs
  `engine.worker.main` (status transitions, checkpoint on SIGTERM, kill -9 losing only the steps since
  the last checkpoint, the next queued run started at its end);
- it holds its run directory open as descriptor WARM_RUN_FD, which proves from /proc that it is that
  run's worker (lab.engine.runs.worker_run_dir) before its pid is written anywhere;
- it has the server's environment and so the same thread count a cold worker would have; the server
  never computes (no thread pool is running when it forks), so a child's numbers are those of a cold one.
The server reads run directories on its stdin and ends when the parent closes it (or dies); workers it
forked run on to their end. Anything wrong with the server makes the parent start cold workers instead.
LAB_WARM_WORKERS=0 turns warm workers off; they need fork and /proc (Linux).
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import traceback
from pathlib import Path

from lab.engine import jobs, worker
from lab.engine.kinds import job_kind
from lab.engine.runs import WARM_RUN_FD, WARM_SERVER_MODULE, Run

REPLY_TIMEOUT_S = 120.0  # how long the parent waits for a forked worker's pid (the first waits for the imports)


def enabled() -> bool:
    """Whether child runs side by side get warm workers: on Linux unless LAB_WARM_WORKERS=0."""
    return sys.platform == "linux" and os.environ.get("LAB_WARM_WORKERS", "").strip() != "0"


class WarmServer:
    """The parent's side of a warm server for child runs of one kind and one share of the cores."""

    def __init__(self, kind: str, root: Path, threads: int):
        self.kind, self.root, self.threads = kind, Path(root), threads
        self.process: subprocess.Popen | None = None
        self.broken = False

    def start(self, run: Run) -> bool:
        """Fork a worker for the queued `run` (the caller holds the queue's lock) and record it as running;
        False, with the server given up, when that fails (then the caller starts a cold worker)."""
        if self.broken:
            return False
        try:
            if self.process is None:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", WARM_SERVER_MODULE, self.kind], cwd=jobs.PROJECT_ROOT,
                    env=jobs.worker_env(self.root, self.threads), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    start_new_session=True)  # its stderr is the parent's: the parent's log
            run.write_status(executor="local")
            self.process.stdin.write(f"{run.path}\n".encode())
            self.process.stdin.flush()
            pid = self._reply()
        except (OSError, ValueError) as e:
            print(f"warm worker server for {self.kind} runs failed ({type(e).__name__}: {e}); starting cold workers",
                  file=sys.stderr, flush=True)
            self.close()
            self.broken = True
            return False
        jobs.mark_started(run, pid)
        return True

    def _reply(self) -> int:
        """The pid the forked worker writes once it is provable as its run's worker."""
        ready, _, _ = select.select([self.process.stdout], [], [], REPLY_TIMEOUT_S)
        line = self.process.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            raise ValueError(f"no worker pid from the server within {REPLY_TIMEOUT_S:.0f} s (got {line[:80]!r})")
        return int(line)

    def close(self) -> None:
        """End the server (the workers it forked run on)."""
        if self.process is None:
            return
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


# --- the server's process ---------------------------------------------------------------------------

def serve(kind: str) -> int:
    """The warm server: import `kind`'s job once, then fork a worker for every run directory read on stdin."""
    job_kind(kind)
    signal.signal(signal.SIGCHLD, _reap)
    while True:
        line = sys.stdin.buffer.readline()
        if not line:  # the parent closed its end, or died
            return 0
        run_dir = line.decode().strip()
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            _worker(run_dir)


def _reap(signum, frame) -> None:
    """Collect ended workers, so none stays a zombie while the server lives."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _worker(run_dir: str) -> None:
    """In the forked process: become the run's worker, as `python -m lab worker <run_dir>` would; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the job's own subprocesses are its to wait for
        os.setsid()
        held = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
        os.dup2(held, WARM_RUN_FD, inheritable=False)
        os.close(held)
        nothing = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nothing, 0)
        os.close(nothing)
        os.write(1, f"{os.getpid()}\n".encode())  # provable from now on: the parent may record this pid
        log = os.open(Run(run_dir).log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        code = worker.main(run_dir)
    except BaseException:  # noqa: BLE001 - whatever happens, this process must not return into the server's loop
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
