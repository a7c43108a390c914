"""Scale-out: one small study on the local executor and on Ray, both with 2 worker slots here.

    LAB_DATA_DIR=../shared/datasets .venv/bin/python bench/scale_out.py [--seeds 2] [--steps 20]
    LAB_DATA_DIR=../shared/datasets .venv/bin/python bench/scale_out.py --nodes 2 [--cpus-per-node 1]

With --nodes N the same study runs on a Ray cluster of this machine (ray.cluster_utils.Cluster, each
node its own raylet with --cpus-per-node CPUs) of one node, then of N nodes, and the figures are
`ray_seconds_one_node`, `ray_seconds_two_nodes` (for N = 2; else `ray_seconds_<N>_nodes`) and
`nodes_used`: how many nodes the study's runs ran on (from their status.json).

The study (real only vs standard augmentation, `--seeds` seeds, `--steps` classifier steps per arm
on 3% of PneumoniaMNIST 28) runs end to end through the queue, first with LAB_EXECUTOR=local and
LAB_MAX_JOBS=2, then with LAB_EXECUTOR=ray on a local Ray started here with 2 CPUs. Each run
is 1 study job + arms × seeds arm jobs. Reported: the wall time of each, Ray's overhead per job
((ray - local) / jobs), the mean arm job time (from the runs' own start and end times), and a
projection of a 5 generators × 10 seeds study (50 arm jobs of this size) on N workers:
ceil(50 / N) × (arm job + Ray overhead). The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from classifier.train import TrainConfig  # noqa: E402
from lab.engine import executors, jobs  # noqa: E402
from lab.engine.children import read_children  # noqa: E402
from lab.engine.runs import Run  # noqa: E402
from lab.study.config import ArmConfig, StudyConfig  # noqa: E402

PROJECTED_JOBS = 5 * 10  # 5 generators × 10 seeds
WORKERS = (1, 4, 16, 50)


def run_study(config: StudyConfig, root: Path) -> tuple[float, list[float]]:
    """Wall seconds of the study through the queue, and each arm job's own seconds."""
    os.environ["LAB_RUNS_DIR"] = str(root)
    began = time.perf_counter()
    study = jobs.submit("study", config.to_dict(), root=root)
    state = jobs.wait(study, poll=0.1)
    if state != "done":
        raise SystemExit(f"the study ended {state}: see {study.log_path}")
    seconds = time.perf_counter() - began
    return seconds, [arm_seconds(child) for child in read_children(study).values()]


def arm_seconds(child) -> float:
    """A finished arm job's seconds from its start (a worker's start is not always in status.json:
    then its first event) to its end."""
    status = child.raw_status()
    started = status.get("started") or min((event["t"] for event in child.events()), default=status["created"])
    return status["finished"] - started


def on_cluster(config: StudyConfig, root: Path, nodes: int, cpus: int) -> tuple[float, int]:
    """Wall seconds of the study on a cluster of `nodes` nodes of `cpus` CPUs here, and how many nodes its runs used."""
    import ray
    from ray.cluster_utils import Cluster

    with tempfile.TemporaryDirectory(prefix="ray-") as files:  # short: Ray's socket paths must fit in 107 bytes
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False,
                                                                 "temp_dir": files})
        try:
            for _ in range(nodes - 1):
                cluster.add_node(num_cpus=cpus)
            ray.init(address=cluster.address, namespace=executors.NAMESPACE, log_to_driver=False,
                     logging_level="ERROR")
            os.environ.update(LAB_EXECUTOR="ray", LAB_RAY_ADDRESS=cluster.address)
            os.environ.pop("LAB_MAX_JOBS", None)
            seconds, _ = run_study(config, root)
        finally:
            ray.shutdown()
            cluster.shutdown()
    study = next(Run(path) for path in (root / "study").iterdir())
    used = {child.raw_status().get("ray_node") for child in read_children(study).values()}
    return seconds, len(used | {study.raw_status().get("ray_node")})


def scale_over_nodes(config: StudyConfig, nodes: int, cpus: int) -> None:
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        one, _ = on_cluster(config, Path(tmp) / "one", 1, cpus)
        print(f"Ray, 1 node of {cpus} CPU(s): {one:.1f} s", flush=True)
        many, used = on_cluster(config, Path(tmp) / "many", nodes, cpus)
        print(f"Ray, {nodes} nodes of {cpus} CPU(s) each: {many:.1f} s, the study's runs on {used} nodes", flush=True)
    name = "ray_seconds_two_nodes" if nodes == 2 else f"ray_seconds_{nodes}_nodes"
    print(json.dumps({"cpus_per_node": cpus, "ray_seconds_one_node": round(one, 2), name: round(many, 2),
                      "nodes_used": used, "speedup": round(one / many, 2)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=0, help="compare a Ray cluster of one node with one of N nodes")
    parser.add_argument("--cpus-per-node", type=int, default=1)
    args = parser.parse_args()
    config = StudyConfig(dataset={"name": "pneumoniamnist", "size": 28}, train_fraction=0.03,
                         seeds=list(range(args.seeds)), arms=[ArmConfig("real only"), ArmConfig("flips", "standard_aug")],
                         train=TrainConfig(steps=args.steps, batch_size=16, eval_every=args.steps, device="cpu"))
    if args.nodes:
        return scale_over_nodes(config, args.nodes, args.cpus_per_node)
    job_count = 1 + len(config.arms) * len(config.seeds)
    import ray

    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        os.environ.update(LAB_EXECUTOR="local", LAB_MAX_JOBS="2", OMP_NUM_THREADS="1")
        local_seconds, local_arms = run_study(config, Path(tmp) / "local")
        print(f"local executor, 2 slots: {local_seconds:.1f} s", flush=True)

        ray.init(num_cpus=2, _temp_dir=str(Path(tmp) / "ray"), namespace=executors.NAMESPACE,
                 include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        os.environ.update(LAB_EXECUTOR="ray", LAB_RAY_ADDRESS=ray.get_runtime_context().gcs_address)
        del os.environ["LAB_MAX_JOBS"]
        try:
            ray_seconds, ray_arms = run_study(config, Path(tmp) / "ray")
        finally:
            ray.shutdown()
        print(f"Ray executor, 2 CPUs: {ray_seconds:.1f} s", flush=True)

    overhead = (ray_seconds - local_seconds) / job_count
    arm_seconds = sum(local_arms) / len(local_arms)
    projection = {str(n): round(math.ceil(PROJECTED_JOBS / n) * (arm_seconds + max(overhead, 0.0)), 1)
                  for n in WORKERS}
    print(f"{job_count} jobs; Ray adds {overhead:.2f} s per job; an arm job takes {arm_seconds:.1f} s here")
    print(f"projection, {PROJECTED_JOBS} arm jobs of this size on N workers (seconds): {projection}")
    print(json.dumps({"jobs": job_count, "arm_job_seconds": round(arm_seconds, 2),
                      "ray_arm_job_seconds": round(sum(ray_arms) / len(ray_arms), 2),
                      "projected_seconds_by_workers": projection, "local_seconds": round(local_seconds, 2),
                      "ray_seconds": round(ray_seconds, 2), "ray_overhead_seconds_per_job": round(overhead, 2)}))


if __name__ == "__main__":
    main()
