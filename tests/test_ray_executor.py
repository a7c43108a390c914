"""The Ray executor: a real local Ray (2 CPUs, its files in the test's temporary folder) runs the
lab's queued runs as Ray tasks; results, cancel and resume are those of the local executor, a
run whose task is killed resumes from its checkpoint, and a study survives a change of executor
between launch and resume. A lost node, on a cluster of several: tests/test_ray_cluster.py."""
from __future__ import annotations

import os
import signal
import time

import pytest
import ray

from classifier.train import TrainConfig
from data.files import read_json
from lab.engine import executors, jobs
from lab.engine.children import read_children
from lab.engine.runs import HOST, Run, locate
from lab.study.config import ArmConfig, StudyConfig

STUDY = StudyConfig(dataset={"name": "pneumoniamnist", "size": 28}, train_fraction=0.03, seeds=[0, 1],
                    arms=[ArmConfig("real only"), ArmConfig("flips", "standard_aug")],
                    train=TrainConfig(steps=4, batch_size=16, eval_every=4, device="cpu"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local Ray for the module's tests; its workers reach it through LAB_RAY_ADDRESS."""
    ray.init(num_cpus=2, _temp_dir=str(tmp_path_factory.mktemp("ray")), namespace=executors.NAMESPACE,
             include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LAB_RAY_ADDRESS", ray.get_runtime_context().gcs_address)
        env.delenv("LAB_MAX_JOBS", raising=False)
        yield
    ray.shutdown()


@pytest.fixture
def on_ray(cluster, runs_root, monkeypatch):
    monkeypatch.setenv("LAB_EXECUTOR", "ray")
    return runs_root


def on_local_executor(env: pytest.MonkeyPatch) -> None:
    env.setenv("LAB_EXECUTOR", "local")
    env.setenv("OMP_NUM_THREADS", "1")  # as Ray gives a 1-CPU task: float sums depend on the threads


def run_locally(settings: dict, root) -> dict[str, dict]:
    """The arms' results of the study `settings` run uninterrupted on the local executor (one thread each)
    in the runs folder `root`."""
    with pytest.MonkeyPatch.context() as env:
        on_local_executor(env)
        env.setenv("LAB_RUNS_DIR", str(root))
        study = jobs.submit("study", settings, root=root)
        assert jobs.wait(study, timeout=600) == "done", study.log_path.read_text()
    return arm_results(study)


@pytest.fixture(scope="module")
def local_results(tmp_path_factory) -> dict[str, dict]:
    """The arms' results of STUDY run uninterrupted on the local executor."""
    return run_locally(STUDY.to_dict(), tmp_path_factory.mktemp("local-runs"))


def arm_results(study) -> dict[str, dict]:
    return {key: read_json(child.artifacts / "result.json") for key, child in read_children(study).items()}


def assert_same_results(results: dict[str, dict], expected: dict[str, dict]) -> None:
    assert sorted(results) == ["flips|0", "flips|1", "real only|0", "real only|1"]
    for key, result in results.items():
        assert result["test"] == expected[key]["test"], key
        assert result["history"] == expected[key]["history"], key


def wait_until(predicate, what, timeout=120.0):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, what()
        time.sleep(0.05)


def counted(run: Run) -> int:
    return read_json(run.checkpoints / "last.json", {"step": 0})["step"]


def test_a_study_on_ray_gives_the_local_executors_numbers(on_ray, local_results):
    assert executors.slots() == 2
    on_cluster = jobs.submit("study", STUDY.to_dict(), root=on_ray)
    assert jobs.wait(on_cluster, timeout=600) == "done", on_cluster.log_path.read_text()
    assert on_cluster.raw_status()["executor"] == "ray"
    assert_same_results(arm_results(on_cluster), local_results)


def test_a_cancelled_ray_job_saves_its_checkpoint_and_resumes_from_it(on_ray):
    # 8 s of counting: a cancel on a loaded machine (here 2 cores) lands well before the end
    run = jobs.submit("count", {"steps": 80, "delay": 0.1}, root=on_ray)
    wait_until(lambda: counted(run) >= 3 or run.raw_status()["state"] not in ("queued", "running"),
               lambda: (run.raw_status(), run.log_path.read_text()))
    assert run.raw_status()["executor"] == "ray"
    jobs.cancel(run)
    assert jobs.wait(run, timeout=120) == "cancelled", run.log_path.read_text()
    assert "cancel requested" in run.log_path.read_text()  # ray.cancel's SIGTERM or the flag beside it
    saved = counted(run)
    assert 3 <= saved < 80

    jobs.resume(run, root=on_ray)
    assert jobs.wait(run, timeout=180) == "done", run.log_path.read_text()
    assert run.events("resume")[0]["step"] == saved
    assert read_json(run.artifacts / "result.json") == {"counted": 80}


def test_a_ray_task_killed_mid_run_leaves_its_run_resumable_from_its_checkpoint(on_ray, monkeypatch):
    run = jobs.submit("count", {"steps": 60, "delay": 0.1}, root=on_ray)
    wait_until(lambda: counted(run) >= 3 or run.raw_status()["state"] not in ("queued", "running"),
               lambda: (run.raw_status(), run.log_path.read_text()))
    status = run.raw_status()
    node = ray.get_runtime_context().get_node_id()
    assert (status["host"], status["ray_node"], status["executor"]) == (HOST, node, "ray")
    assert locate(run, status) == "worker"
    # Seen from another machine, the run is proven through Ray on its node, not through /proc here.
    judged = executors.judge_elsewhere(run, {**status, "host": "node-b.example"})
    assert judged["state"] == "running" and judged["elsewhere"] == "node-b.example"
    stale = {**status, "host": "node-b.example", "pid_start": status["pid_start"] + 1}
    assert "is not running on Ray node" in executors.judge_elsewhere(run, stale)["error"]

    task = int(open(f"/proc/{status['pid']}/stat").read().rsplit(")", 1)[1].split()[1])  # the worker's parent
    assert f"{executors.TASK_PID_VAR}={task}".encode() in open(f"/proc/{status['pid']}/environ", "rb").read()
    os.kill(task, signal.SIGKILL)  # what a lost node does to the task
    assert jobs.wait(run, timeout=60) == "failed", run.log_path.read_text()
    assert f"its Ray task's process {task} on Ray node {node}" in run.status()["error"]
    saved = counted(run)
    assert 3 <= saved < 60

    monkeypatch.setenv("LAB_EXECUTOR", "local")  # the cheaper executor: where it resumes does not matter
    jobs.resume(run, root=on_ray)
    assert jobs.wait(run, timeout=120) == "done", run.log_path.read_text()
    assert run.events("resume")[-1]["step"] == saved
    values = [event["value"] for event in run.events("progress")]
    assert values[-1] == 60 and values.count(saved + 1) == 1  # continued after its checkpoint, not restarted


def ray_child(study: Run) -> Run | None:
    """A child of `study` running in a Ray task's worker of its own, if there is one now."""
    for child in read_children(study).values():
        status = child.raw_status()
        if status["state"] == "running" and status.get("executor") == "ray" and locate(child, status) == "worker":
            return child
    return None


def test_a_cancelled_ray_child_and_a_study_resumed_on_the_local_executor_finish_with_the_same_numbers(
        on_ray, local_results, monkeypatch):
    study = jobs.submit("study", STUDY.to_dict(), root=on_ray)
    wait_until(lambda: ray_child(study) or study.state not in ("queued", "running"),
               lambda: (study.raw_status(), study.log_path.read_text()), timeout=300)
    child = ray_child(study)
    jobs.cancel(child)  # as soon as it runs: its worker is still starting, it stops after its first step
    assert jobs.wait(child, timeout=120) == "cancelled", child.log_path.read_text()
    assert "cancel requested" in child.log_path.read_text()  # the cancel reached the child's worker (SIGTERM or flag)
    assert (child.checkpoints / "last.pt").exists()
    jobs.cancel(study)
    assert jobs.wait(study, timeout=120) in ("cancelled", "failed"), study.log_path.read_text()
    # The dispatcher starts queued runs once a task has ended: let it finish that before the lab moves off Ray.
    wait_until(lambda: ray.get(executors.dispatcher().idle.remote()), lambda: "the dispatcher stayed busy", timeout=60)

    on_local_executor(monkeypatch)  # launched on Ray, resumed on this machine
    jobs.resume(study, root=on_ray)
    assert jobs.wait(study, timeout=600) == "done", study.log_path.read_text()
    assert study.raw_status()["executor"] == "local"
    assert 1 <= child.events("resume")[-1]["step"] < STUDY.train.steps  # it continued from its checkpoint
    assert_same_results(arm_results(study), local_results)


def test_the_storage_check_refuses_a_runs_folder_a_node_cannot_see(cluster, tmp_path, monkeypatch):
    # The path exists on the node, but it holds another folder: the node reads another marker.
    monkeypatch.setattr(executors, "atomic_write_text", lambda path, text: path.write_text("elsewhere"))
    with pytest.raises(executors.SharedStorageError, match="cannot see the runs folder"):
        executors.check_shared_storage(tmp_path / "unseen")


def test_the_summary_names_the_executor_and_its_slots(cluster, monkeypatch):
    monkeypatch.setenv("LAB_EXECUTOR", "ray")
    assert "Ray" in executors.executor_summary() and "2 slots (2 CPUs, 0 GPUs)" in executors.executor_summary()
    monkeypatch.setenv("LAB_EXECUTOR", "local")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as Ray gives a 1-CPU task: float sums depend on the threads
    assert executors.executor_summary() == "Jobs run on this machine: 1 slot (LAB_MAX_JOBS)"
