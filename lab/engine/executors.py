"""Where queued runs execute: on this machine, or on a Ray cluster.

LAB_EXECUTOR=local (the default): lab/engine/jobs.py starts `python -m lab worker <run dir>` as a detached
process here, at most LAB_MAX_JOBS (default 1) at a time.

LAB_EXECUTOR=ray: each run the queue starts becomes a Ray task that starts the same worker command
on the node Ray picks and holds the task's resources until the job ends: one CPU, and one GPU when
the job's device asks for CUDA ("auto" or "cuda...") and the cluster has GPUs. The queue lets as
many runs run as the cluster has CPUs (LAB_MAX_JOBS still overrides). LAB_RAY_ADDRESS names the
cluster: "auto" (the one `ray start` runs on this machine), a "ray://host:10001" client address, a
GCS "host:port", or empty: the local one, started with `ray start --head` when none runs (it
outlives the lab's processes; `ray stop` ends it).

Requirement: every node sees the runs folder (LAB_RUNS_DIR), the lab's code and its Python
environment at the same paths (a shared file system). Before the first run starts, a tiny task on
every node checks that it can read a marker file written into the runs folder; the lab refuses to
start runs otherwise (SharedStorageError names the nodes).

A run stays a run directory. The worker writes status, events and checkpoints there as it does
locally, and names its host and Ray node in status.json. Cancel becomes `ray.cancel` of the task,
which hands the worker the same SIGTERM (and the run's cancel flag, in case the interrupt misses),
so it saves its checkpoint and ends cancelled. A worker whose task's process is gone (killed, or
its node going down) saves its checkpoint and ends failed. A run that status.json says runs on
another host is judged through Ray, never through this machine's /proc (`judge_elsewhere`): its
node lost, or its process gone there, it reads as failed and resumes from its last checkpoint.
Tasks are never retried by Ray (max_retries=0): a resume is the user's call, as locally.

A task asks for what its job will use: one CPU (its worker runs one torch thread) and the GPU
above, so Ray never puts more jobs on a node than it has CPUs; a cluster of N CPUs runs N jobs at
once, wherever they fit. A job that fans out (a study) executes one child at a time in its own
task, on its own CPU, while the queue hands its other children to the cluster as tasks of their
own. A worker's status names its Ray node; `runs_by_node` counts the lab's runs on each.

The tasks belong to a detached actor, the dispatcher, not to the process that queued the run: a
CLI that queues a study and exits must not take its jobs with it (Ray ends a task with its owner).
The dispatcher also starts the next queued runs when a task has ended: a worker that did so at
its own end would wait for a run that waits for the CPU its own task still holds.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Callable

from data.files import atomic_write_text
from lab.engine import runs
from lab.engine.runs import (ACTIVE_STATES, HOST, RAY_NODE_VAR, Run, Status, list_runs, locate_here,
                             process_alive)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # lab/engine/ -> the checkout
EXECUTORS = ("local", "ray")
NAMESPACE = "gan-augmentation-lab"
DISPATCHER = "lab-dispatcher"
START_TIMEOUT_S = 120.0  # how long `start_on_ray` waits for a task's worker to report (a busy cluster)
CHECK_TIMEOUT_S = 60.0
TASK_PID_VAR = "LAB_RAY_TASK_PID"  # set in a worker's environment: the Ray task process that started it
NODES_TTL_S = 2.0  # how long the list of alive nodes, and a proof that a run's process lives, are reused
PROOF_TIMEOUT_S = 20.0  # how long a node may take to answer whether a run's process lives there
RETRY_CONNECT_S = 30.0  # after Ray did not answer, how long status reads judge without it
HEAD_NODE_RESOURCE = "node:__internal_head__"  # a resource only Ray's head node has
RAYLET_PID_VAR = "RAY_RAYLET_PID"  # set by Ray in a task's environment: the raylet of the task's node
RAYLET_END_S = 10.0  # how long a worker whose task ended waits to learn whether the node's raylet ends too
# Jobs at once, at most: each worker holds its own torch and data (about 1 GiB), so even a large machine
# or cluster fills its memory long before 64 jobs; a larger LAB_MAX_JOBS is a typo (or 10^23).
MAX_JOBS = 64
MAX_AUTO_CHILD_WORKERS = 4  # child runs side by side by default: each worker holds its own copy of torch and data


class SharedStorageError(RuntimeError):
    """A Ray node cannot see the runs folder at the path this machine uses."""


def executor_name() -> str:
    """The executor LAB_EXECUTOR names: "local" (default) or "ray"; ValueError for anything else."""
    name = os.environ.get("LAB_EXECUTOR", "").strip().lower() or "local"
    if name not in EXECUTORS:
        raise ValueError(f"LAB_EXECUTOR={name!r} is not an executor (known: {', '.join(EXECUTORS)})")
    return name


def slots() -> int:
    """How many runs may run at once: LAB_MAX_JOBS when set, else 1 locally and the cluster's CPUs on Ray.
    ValueError naming LAB_MAX_JOBS when it is not a whole number from 1 to MAX_JOBS."""
    limit = os.environ.get("LAB_MAX_JOBS", "").strip()
    if limit:
        if limit not in {str(n) for n in range(1, MAX_JOBS + 1)}:  # not int(): it takes "1_0" and "١"
            raise ValueError(f"LAB_MAX_JOBS={limit!r} is not a whole number from 1 to {MAX_JOBS}: set it to how many "
                             f"jobs may run at once (e.g. LAB_MAX_JOBS=2), or unset it")
        return int(limit)
    if executor_name() == "local":
        return 1
    return max(1, int(connect().cluster_resources().get("CPU", 1)))


def child_workers(pending: int) -> int:
    """How many of a job's child runs (a study's arms, its generators, SinGAN's seeds) run side by side
    on this machine, each in a worker process of its own with an equal share of the cores.

    LAB_CHILD_WORKERS when set (1: one after another, in the parent's process); else one per core,
    at most MAX_AUTO_CHILD_WORKERS, on the local executor without CUDA, and 1 otherwise (on Ray the
    queue hands children to the cluster; several processes would share one GPU). On small images a
    torch process gains almost nothing from a second thread (EfficientNet-b0 at 28 px: 250 ms per
    step of 64 with one thread or two on this 2-core machine), so two one-thread workers do twice
    the work of one two-thread process. Never more than `pending`. ValueError naming the variable
    when it is not a whole number.
    """
    value = os.environ.get("LAB_CHILD_WORKERS", "").strip()
    if value:
        try:
            wanted = max(1, int(value))
        except ValueError:
            raise ValueError(f"LAB_CHILD_WORKERS={value!r} is not a whole number: set it to how many child "
                             f"runs may run side by side (1: one after another), or unset it") from None
    elif executor_name() != "local" or _cuda_available():
        wanted = 1
    else:
        wanted = min(cpu_cores(), MAX_AUTO_CHILD_WORKERS)
    return max(1, min(wanted, pending))


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cuda_available() -> bool:
    import torch  # the callers are jobs, which have loaded it already

    return torch.cuda.is_available()


def executor_summary() -> str:
    """One line for the sidebar: which executor runs jobs, how many at once and, on Ray, how many run
    where, e.g. "Jobs run on Ray at auto: 8 slots (8 CPUs, 1 GPU); running: 3 on node-a node 3712af42,
    1 on node-b node 4811e290" or "Jobs run on this machine: 1 slot"."""
    try:
        if executor_name() == "local":
            return f"Jobs run on this machine: {_plural(slots(), 'slot')} (LAB_MAX_JOBS)"
        resources = connect().cluster_resources()
        on_node = runs_by_node()
    except Exception as e:  # noqa: BLE001 - the sidebar says what is wrong instead of failing the page
        return f"Executor {os.environ.get('LAB_EXECUTOR', '')!r} unavailable: {type(e).__name__}: {e}"
    address = os.environ.get("LAB_RAY_ADDRESS", "").strip() or "this machine"
    where = ", ".join(f"{count} on {host} node {node[:8]}" for (host, node), count in sorted(on_node.items()))
    return (f"Jobs run on Ray at {address}: {_plural(slots(), 'slot')} "
            f"({_plural(int(resources.get('CPU', 0)), 'CPU')}, {_plural(int(resources.get('GPU', 0)), 'GPU')})"
            + (f"; running: {where}" if where else ""))


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


# --- connecting to Ray -----------------------------------------------------------------------------

_checked_roots: set[Path] = set()
_unreachable_until = 0.0  # monotonic time before which `reachable_ray` does not try to connect again


def connect():
    """The `ray` module, connected to LAB_RAY_ADDRESS's cluster (or to the one this process already
    joined). RuntimeError with the install command when Ray is not installed."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("LAB_EXECUTOR=ray needs Ray: pip install -r requirements-ray.txt") from None
    if not ray.is_initialized():
        address = os.environ.get("LAB_RAY_ADDRESS", "").strip() or _local_cluster()
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level="ERROR")
    return ray


def reachable_ray():
    """The connected `ray` module when Ray is in reach: this process joined a cluster, or
    LAB_EXECUTOR=ray and its cluster answers. None otherwise (then for RETRY_CONNECT_S, when it
    did not answer: status reads must not wait on a cluster that is down)."""
    global _unreachable_until
    try:
        import ray
    except ImportError:
        return None
    if ray.is_initialized():
        return ray
    try:
        if executor_name() != "ray" or time.monotonic() < _unreachable_until:
            return None
        return connect()
    except Exception:  # noqa: BLE001 - any failure to connect means: not in reach
        _unreachable_until = time.monotonic() + RETRY_CONNECT_S
        return None


def _local_cluster() -> str:
    """"auto" for the Ray on this machine, started with `ray start --head` when none runs."""
    if not Path("/tmp/ray/ray_current_cluster").exists():
        ray_command = Path(sys.executable).parent / "ray"
        subprocess.run([str(ray_command), "start", "--head", f"--num-cpus={os.cpu_count() or 1}",
                        "--disable-usage-stats"], check=True, stdout=subprocess.DEVNULL)
    return "auto"


def _runtime_env() -> dict:
    """The lab's code on the nodes' import path (at the same path as here: see the module docstring)."""
    return {"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}}


def check_shared_storage(root: Path) -> None:
    """Refuse (SharedStorageError) unless every alive node reads the marker file this machine writes
    into the runs folder `root`. Checked once per process and folder."""
    root = Path(root).resolve()
    if root in _checked_roots:
        return
    ray = connect()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    marker = root / f".ray-check-{token}"
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, token)
    try:
        nodes = [node for node in ray.nodes() if node["Alive"]]
        sees = ray.remote(num_cpus=0, max_retries=0)(_reads_marker)
        checks = [sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                               runtime_env=_runtime_env()).remote(str(marker), token) for node in nodes]
        results = ray.get(checks, timeout=CHECK_TIMEOUT_S)
    finally:
        marker.unlink(missing_ok=True)
    blind = [node["NodeManagerAddress"] for node, ok in zip(nodes, results) if not ok]
    if blind:
        raise SharedStorageError(
            f"Ray node(s) {', '.join(blind)} cannot see the runs folder {root} (LAB_RUNS_DIR). Under "
            f"LAB_EXECUTOR=ray every node must see the runs folder, the lab's code and its Python at the "
            f"same paths (a shared file system); no run was started.")
    _checked_roots.add(root)


def _reads_marker(path: str, token: str) -> bool:
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


# --- runs as Ray tasks -----------------------------------------------------------------------------

def job_resources(run: Run, cluster_gpus: float) -> dict:
    """A run's Ray resources: one CPU, and one GPU when its device asks for CUDA and the cluster has one."""
    settings = run.settings
    device = settings.get("device") or (settings.get("train") or {}).get("device") or "auto"
    wants_cuda = isinstance(device, str) and (device == "auto" or device.startswith("cuda"))
    return {"num_cpus": 1, "num_gpus": 1 if wants_cuda and cluster_gpus >= 1 else 0}


def start_on_ray(run: Run, on_end: Callable[[Path], object] | None = None) -> None:
    """Hand a queued run to the cluster and wait until its worker reports (as Popen waits for the
    exec), so the queue counts it as running. A run no node starts within START_TIMEOUT_S fails,
    resumable, with a message saying so. `on_end(runs folder)` runs in the dispatcher once the
    run's task has ended and given back its resources (the queue starts its next runs there)."""
    ray = connect()
    root = run.path.parent.parent
    check_shared_storage(root)
    run.write_status(executor="ray")
    resources = job_resources(run, ray.cluster_resources().get("GPU", 0))
    # The worker runs as many threads as its task has CPUs: float sums depend on the thread count.
    threads = str(resources["num_cpus"])
    env = {**_worker_env(root), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    ray.get(dispatcher().start.remote(str(run.path), env, resources, on_end))
    deadline = time.monotonic() + START_TIMEOUT_S
    while run.raw_status()["state"] == "queued":
        if time.monotonic() > deadline:
            ray.get(dispatcher().cancel.remote(str(run.path)))
            run.write_status("failed", finished=time.time(),
                             error=f"no Ray node started it within {START_TIMEOUT_S:.0f} s (is the cluster busy?)")
            return
        time.sleep(0.05)


def cancel_on_ray(run: Run) -> bool:
    """`ray.cancel` of the run's task: its worker gets SIGTERM and saves. False when Ray is not in
    reach or the dispatcher holds no task for the run (then the caller stops the worker another way)."""
    ray = reachable_ray()
    return ray is not None and ray.get(dispatcher().cancel.remote(str(run.path)))


def runs_by_node(root: Path | None = None) -> Counter:
    """How many of the lab's runs run on each Ray node, by (host, node id): a study's child executing in
    its parent's task counts on its parent's node."""
    counts = Counter()
    for run in list_runs(root=root):
        status = run.raw_status()
        if status["state"] == "running" and status.get("ray_node") and run.state == "running":
            counts[(status.get("host"), status["ray_node"])] += 1
    return counts


def task_gone_error(task_pid: int) -> str:
    """Why a worker's Ray task process `task_pid` ended (lab.engine.worker): its node was lost when the
    node's raylet ends too (within RAYLET_END_S: on a node going down the tasks end first), else
    the task was killed. The message names the node and says how to continue."""
    node, raylet = os.environ.get(RAY_NODE_VAR), os.environ.get(RAYLET_PID_VAR, "")
    deadline = time.monotonic() + RAYLET_END_S
    while raylet.isdigit() and process_alive(int(raylet)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if raylet.isdigit() and not process_alive(int(raylet)):
        what = f"its Ray node {node} (host {HOST}) was lost (its raylet {raylet} ended)"
    else:
        what = f"its Ray task's process {task_pid} on Ray node {node} (host {HOST}) ended: killed"
    return f"{what}; resume it to continue from its last checkpoint"


# --- runs on other machines ------------------------------------------------------------------------

_seen: dict[tuple, tuple[float, object]] = {}  # what Ray said lately: key -> (monotonic time, answer)


def judge_elsewhere(run: Run, status: Status) -> Status:
    """The status of a running `run` whose status.json names another host, judged through Ray and
    never through this machine's /proc.

    Running, with "elsewhere" naming its host, unless Ray proves otherwise: without Ray in reach
    (see `reachable_ray`), or without a Ray node id (a local worker of another machine sharing the
    runs folder), or when Ray does not answer, nothing here can prove it dead. With Ray: a node
    that is not alive in `ray.nodes()` was lost, and on an alive node a task pinned there looks for
    the run's process in that node's /proc (`locate_here`); either way the run is failed and dead,
    resumable from its last checkpoint, with an error naming the node.
    """
    ray = reachable_ray() if status.get("ray_node") else None
    try:
        error = ray and _lost(ray, run, status)
    except Exception:  # noqa: BLE001 - Ray did not answer: nothing is proven either way
        error = None
    if not error:
        return {**status, "elsewhere": status["host"]}
    latest = run.raw_status()
    if latest["state"] != "running" or latest.get("pid") != status.get("pid"):
        return latest  # it ended, or moved on, while Ray was asked
    return {**status, "state": "failed", "dead": True,
            "error": f"{error}: resume it to continue from its last checkpoint"}


def _lost(ray, run: Run, status: Status) -> str | None:
    """Why Ray says the run's process is gone (its node lost, or no such process on its node); None
    when its node runs it. Raises when Ray does not answer."""
    node, host = status["ray_node"], status["host"]
    if node not in _recall(("nodes",), lambda: _alive_nodes(ray)):
        return f"its Ray node {node} (host {host}) was lost"
    if not _recall((run.path, status.get("pid"), status.get("pid_start")), lambda: _locate_on(ray, node, run, status)):
        return f"its worker process {status.get('pid')} is not running on Ray node {node} (host {host})"
    return None


def _recall(key: tuple, ask):
    """`ask()`, or its answer for `key` from less than NODES_TTL_S ago."""
    now = time.monotonic()
    if key not in _seen or now - _seen[key][0] > NODES_TTL_S:
        _seen[key] = (now, ask())
    return _seen[key][1]


def _alive_nodes(ray) -> set[str]:
    return {node["NodeID"] for node in ray.nodes() if node["Alive"]}


def _locate_on(ray, node: str, run: Run, status: Status) -> bool:
    """Whether the node `node` runs the run's process (`locate_here` there); raises when it does not answer."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = ray.remote(num_cpus=0, max_retries=0)(_located)
    answer = check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
                           runtime_env=_runtime_env()).remote(str(run.path), dict(status))
    return ray.get(answer, timeout=PROOF_TIMEOUT_S)


def _located(run_dir: str, status: dict) -> bool:
    return locate_here(Run(run_dir), status) is not None


def _worker_env(root: Path) -> dict:
    """What a worker on a node needs from here: the lab's settings, this runs folder, unbuffered logs."""
    lab = {key: value for key, value in os.environ.items() if key.startswith("LAB_")}
    return {**lab, "LAB_RUNS_DIR": str(root), "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(PROJECT_ROOT)}


def run_worker(run_dir: str, env: dict) -> int:
    """On a node: the run's worker process, to its end; returns its exit code. `ray.cancel` raises
    KeyboardInterrupt here, which becomes one SIGTERM to the worker, as a local cancel sends. The
    worker learns its node (for status.json) and this process (it stops when this one is gone)."""
    import ray

    here = {RAY_NODE_VAR: ray.get_runtime_context().get_node_id(), TASK_PID_VAR: str(os.getpid())}
    with open(Run(run_dir).log_path, "a") as log:
        worker = subprocess.Popen([sys.executable, "-m", "lab", "worker", run_dir], cwd=PROJECT_ROOT,
                                  env={**os.environ, **env, **here}, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:  # short waits: Ray's interrupt lands between Python steps, never inside a blocking wait
            try:
                return worker.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
    except KeyboardInterrupt:
        worker.send_signal(signal.SIGTERM)
        return worker.wait()


class Dispatcher:
    """The detached actor that owns the lab's Ray tasks, by run directory."""

    def __init__(self):
        self.tasks = {}

    def start(self, run_dir: str, env: dict, resources: dict, on_end: Callable[[Path], object] | None = None) -> None:
        import ray

        task = ray.remote(max_retries=0)(run_worker)
        self.tasks[run_dir] = task.options(runtime_env=_runtime_env(), **resources).remote(run_dir, env)
        if on_end is not None:
            threading.Thread(target=_after, args=(self.tasks[run_dir], env, on_end), daemon=True).start()

    def cancel(self, run_dir: str) -> bool:
        import ray

        task = self.in_flight().get(run_dir)
        if task is None:
            return False
        ray.cancel(task)
        return True

    def in_flight(self) -> dict:
        """The tasks not finished yet, by run directory."""
        import ray

        if self.tasks:
            done, _ = ray.wait(list(self.tasks.values()), num_returns=len(self.tasks), timeout=0)
            self.tasks = {run_dir: task for run_dir, task in self.tasks.items() if task not in done}
        return self.tasks

    def running(self) -> list[str]:
        return list(self.in_flight())


def _after(task, env: dict, on_end: Callable[[Path], object]) -> None:
    """In the dispatcher: `on_end(runs folder)` once `task` has ended, under the lab settings (LAB_*) of
    the process that started it."""
    import ray

    ray.wait([task], timeout=None)
    for key in [key for key in os.environ if key.startswith("LAB_") and key not in env]:
        del os.environ[key]
    os.environ.update({key: value for key, value in env.items() if key.startswith("LAB_")})
    try:
        on_end(Path(env["LAB_RUNS_DIR"]))
    except Exception as e:  # noqa: BLE001 - the dispatcher lives on; the next run's end tries again
        print(f"starting the runs queued after {task} failed: {type(e).__name__}: {e}", flush=True)


def dispatcher():
    """The cluster's dispatcher actor, created on first use (detached: it outlives this process)."""
    ray = connect()
    actor = ray.remote(num_cpus=0)(Dispatcher)
    # On the head node: Ray ends a task with its owner, so a dispatcher on a node that is lost would take
    # every run of the cluster with it; the head's loss ends the cluster anyway.
    return actor.options(name=DISPATCHER, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                         resources={HEAD_NODE_RESOURCE: 0.001}, runtime_env=_runtime_env()).remote()


# --- the cluster as `python -m lab cluster` shows it ------------------------------------------------

def cluster_report(root: Path | None = None) -> dict:
    """The cluster's nodes and resources and the lab's runs on it: {"executor", "summary", "nodes":
    [{"id", "address", "alive", "cpus", "gpus", "running"}], "total", "available", "runs": [{"id",
    "kind", "state", "node"}], "tasks": run directories whose task is in flight}; a node's "running"
    counts the lab's runs on it (a study's child executing in its parent's task included)."""
    ray = connect()
    runs = [run for run in list_runs(root=root)
            if run.state in ACTIVE_STATES and run.raw_status().get("executor") == "ray"]
    on_node = runs_by_node(root)
    return {
        "executor": executor_name(),
        "summary": executor_summary(),
        "nodes": [{"id": node["NodeID"], "address": node["NodeManagerAddress"], "alive": node["Alive"],
                   "cpus": node["Resources"].get("CPU", 0), "gpus": node["Resources"].get("GPU", 0),
                   "running": sum(count for (_, node_id), count in on_node.items() if node_id == node["NodeID"])}
                  for node in ray.nodes()],
        "total": ray.cluster_resources(),
        "available": ray.available_resources(),
        "runs": [{"id": run.id, "kind": run.kind, "state": run.state, "node": run.raw_status().get("ray_node")}
                 for run in runs],
        "tasks": ray.get(dispatcher().running.remote()),
    }


runs.set_elsewhere_judge(judge_elsewhere)  # Run.status asks Ray about runs on other hosts
