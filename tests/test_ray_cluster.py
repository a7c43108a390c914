"""Several Ray nodes on this machine (ray.cluster_utils.Cluster: a head and a second node, each its own
raylet with one CPU): a study's child runs land on both nodes, Ray's own removal of a node while its run
runs leaves that run lost, naming the node, and `runs resume` finishes the study on the node left with
the numbers of the same study run uninterrupted on the local executor.

About 60-90 s on 2 cores, hence a file of its own: two raylets start, and the study runs twice here
(locally, for the reference numbers, and on the cluster, launched and resumed), each arm a worker
process that imports torch."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
import ray
from ray.cluster_utils import Cluster

from lab.engine import executors, jobs
from lab.engine.children import read_children
from lab.engine.runs import Run
from tests.test_ray_executor import STUDY, arm_results, run_locally, wait_until

SMALL_STUDY = STUDY.to_dict() | {"seeds": [0]}  # two arms on one seed: two child runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def head_only():
    """A Ray cluster of one head node with one CPU, nodes added by the test; this process its driver.
    Every Ray process it started is ended after the test."""
    files = tempfile.TemporaryDirectory(prefix="ray-")  # short: Ray's socket paths must fit in 107 bytes
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                             "temp_dir": files.name})
    try:
        ray.init(address=cluster.address, namespace=executors.NAMESPACE, log_to_driver=False, logging_level="ERROR")
        with pytest.MonkeyPatch.context() as env:
            env.setenv("LAB_EXECUTOR", "ray")
            env.setenv("LAB_RAY_ADDRESS", cluster.address)
            env.delenv("LAB_MAX_JOBS", raising=False)
            yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        files.cleanup()


@pytest.fixture(scope="module")
def local_results(tmp_path_factory) -> dict[str, dict]:
    """The arms' results of SMALL_STUDY run uninterrupted on the local executor, one thread each."""
    return run_locally(SMALL_STUDY, tmp_path_factory.mktemp("local-runs"))


def running_on(study: Run, node: str) -> Run | None:
    """A child of `study` whose worker runs on Ray node `node` now, if there is one."""
    for child in read_children(study).values():
        status = child.raw_status()
        if status["state"] == "running" and status.get("ray_node") == node:
            return child
    return None


def test_a_study_spreads_over_two_nodes_and_a_lost_node_runs_resume_on_the_other(head_only, runs_root,
                                                                                  local_results):
    head = ray.get_runtime_context().get_node_id()
    study = jobs.submit("study", SMALL_STUDY, root=runs_root)  # returns once its worker runs: on the head
    assert study.raw_status()["ray_node"] == head
    second = head_only.add_node(num_cpus=1)  # a node joins: the study's children take its CPU too
    assert executors.slots() == 2
    wait_until(lambda: running_on(study, second.node_id) or study.state != "running",
               lambda: (study.raw_status(), study.log_path.read_text()), timeout=300)
    lost = running_on(study, second.node_id)

    head_only.remove_node(second)  # Ray ends the node's raylet and its tasks; the run's worker was one's child
    assert jobs.wait(lost, timeout=120, poll=0.1) == "failed", lost.log_path.read_text()
    error = lost.status()["error"]
    assert f"its Ray node {second.node_id}" in error and "was lost" in error, error
    saved = (lost.checkpoints / "last.pt").exists()
    assert jobs.wait(study, timeout=120) == "failed", study.log_path.read_text()
    assert f"its Ray node {second.node_id}" in study.status()["error"]
    assert executors.slots() == 1

    env = {**os.environ, "LAB_RUNS_DIR": str(runs_root)}
    resumed = subprocess.run([sys.executable, "-m", "lab", "runs", "resume", str(study.path)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert jobs.wait(study, timeout=600) == "done", study.log_path.read_text()
    nodes = {child.raw_status()["ray_node"] for child in read_children(study).values()}
    assert nodes == {head}  # the resumed children ran on the node left, the others ran there too
    assert bool(lost.events("resume")) == saved, lost.log_path.read_text()  # it continued from what it saved
    results = arm_results(study)
    assert sorted(results) == ["flips|0", "real only|0"]
    for key, result in results.items():
        assert (result["test"], result["history"]) == (local_results[key]["test"], local_results[key]["history"]), key
