"""The Ray executor: a real local Ray (2 CPUs, its files in the test's temporary folder) runs the
lab's queued runs as Ray tasks; results, cancel and resume are those of the local executor."""
from __future__ import annotations

import time

import pytest
import ray

from classifier.train import TrainConfig
from data.files import read_json
from lab import executors, jobs
from lab.children import read_children
from lab.study import ArmConfig, StudyConfig

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


def arm_results(study) -> dict[str, dict]:
    return {key: read_json(child.artifacts / "result.json") for key, child in read_children(study).items()}


def test_a_study_on_ray_gives_the_local_executors_numbers(on_ray, tmp_path, monkeypatch):
    assert executors.slots() == 2
    on_cluster = jobs.submit("study", STUDY.to_dict(), root=on_ray)
    assert jobs.wait(on_cluster, timeout=600) == "done", on_cluster.log_path.read_text()
    assert on_cluster.raw_status()["executor"] == "ray"

    monkeypatch.setenv("LAB_EXECUTOR", "local")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as Ray gives a 1-CPU task: float sums depend on the threads
    local_root = tmp_path / "local-runs"
    monkeypatch.setenv("LAB_RUNS_DIR", str(local_root))
    here = jobs.submit("study", STUDY.to_dict(), root=local_root)
    assert jobs.wait(here, timeout=600) == "done", here.log_path.read_text()

    ray_results, local_results = arm_results(on_cluster), arm_results(here)
    assert sorted(ray_results) == ["flips|0", "flips|1", "real only|0", "real only|1"]
    for key, result in ray_results.items():
        assert result["test"] == local_results[key]["test"], key
        assert result["history"] == local_results[key]["history"], key


def test_a_cancelled_ray_job_saves_its_checkpoint_and_resumes_from_it(on_ray):
    run = jobs.submit("count", {"steps": 40, "delay": 0.1}, root=on_ray)
    deadline = time.time() + 120
    while (run.raw_status().get("progress") or {}).get("done", 0) < 3:
        assert time.time() < deadline and run.raw_status()["state"] in ("queued", "running"), \
            (run.raw_status(), run.log_path.read_text())
        time.sleep(0.1)
    assert run.raw_status()["executor"] == "ray"
    jobs.cancel(run)
    assert jobs.wait(run, timeout=60) == "cancelled", run.log_path.read_text()
    saved = read_json(run.checkpoints / "last.json")["step"]
    assert 3 <= saved < 40

    jobs.resume(run, root=on_ray)
    assert jobs.wait(run, timeout=60) == "done", run.log_path.read_text()
    assert run.events("resume")[0]["step"] == saved
    assert read_json(run.artifacts / "result.json") == {"counted": 40}


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
