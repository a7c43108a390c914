"""`python -m lab cluster`: which executor runs the lab's jobs, the Ray cluster's resources and the lab's jobs on it."""
from __future__ import annotations

import json

from lab.engine import executors


def add_commands(sub) -> None:
    p = sub.add_parser("cluster", help="the executor (LAB_EXECUTOR), the Ray cluster's nodes and resources, "
                                       "and the lab's jobs on it")
    p.add_argument("--json", action="store_true", help="print it as one JSON object")
    p.set_defaults(func=cmd_cluster)


def cmd_cluster(args) -> int:
    if executors.executor_name() == "local":
        print(executors.executor_summary())
        print("Not on a cluster: set LAB_EXECUTOR=ray (and LAB_RAY_ADDRESS) to run jobs on Ray.")
        return 0
    report = executors.cluster_report()
    if args.json:
        print(json.dumps(report))
        return 0
    print(report["summary"])
    print("Nodes:")
    for node in report["nodes"]:
        print(f"  {node['address']:20s} {node['id'][:8]}  {'alive' if node['alive'] else 'dead ':5s}  "
              f"{node['cpus']:g} CPUs  {node['gpus']:g} GPUs  {node['running']} of the lab's runs")
    for name in ("CPU", "GPU"):
        print(f"{name}s free: {report['available'].get(name, 0):g} of {report['total'].get(name, 0):g}")
    print(f"The lab's jobs on Ray: {len(report['runs'])} queued or running, {len(report['tasks'])} tasks in flight")
    for run in report["runs"]:
        print(f"  {run['kind']:10s} {run['id']}  {run['state']}" + (f" on node {run['node'][:8]}" if run["node"] else ""))
    return 0
