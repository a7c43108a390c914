"""A worker's start-up: `python -m lab worker <run dir>` for a count job of one step, timed as a whole process.

Every child run of a study pays it. The reference in the same run is a bare `python -c pass` and a
`python -c "import torch"` (what any job that trains pays). The worker is also run once under a
wrapper that lists which of the heavy libraries it loaded: a worker should load only what its kind needs.

    python bench/worker_startup.py                      # this checkout
    python bench/worker_startup.py --checkout ../old    # another checkout of the lab, e.g. before a change

Prints one JSON line: median, min and max seconds of each, and the heavy modules the worker loaded.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "torchvision", "albumentations", "matplotlib", "scipy", "sklearn", "pandas")
LIST_MODULES = ("import json, runpy, sys\nsys.argv = ['lab', 'worker', sys.argv[1]]\n"
                "try:\n    runpy.run_module('lab', run_name='__main__')\nexcept SystemExit:\n    pass\n"
                f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n")


def queued_count_run(runs: Path) -> Path:
    """A queued run of the count job (one step, no delay), written as the lab writes one."""
    run = runs / "count" / f"{time.strftime('%Y%m%d-%H%M%S')}-bench-{os.urandom(2).hex()}"
    for sub in ("checkpoints", "samples", "artifacts"):
        (run / sub).mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "queued", "created": time.time()}))
    (run / "config.json").write_text(json.dumps({"steps": 1, "delay": 0.0, "kind": "count"}))
    return run


def timed(command: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def figures(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the lab checkout whose worker is timed")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        env = {**os.environ, "LAB_RUNS_DIR": str(runs), "PYTHONPATH": str(checkout)}
        worker, python, torch = [], [], []
        for _ in range(args.repeats):
            run = queued_count_run(runs)
            worker.append(timed([sys.executable, "-m", "lab", "worker", str(run)], checkout, env))
            state = json.loads((run / "status.json").read_text())["state"]
            if state != "done":
                raise SystemExit(f"the count job ended {state}: see {run / 'log.txt'}")
            python.append(timed([sys.executable, "-c", "pass"], checkout, env))
            torch.append(timed([sys.executable, "-c", "import torch"], checkout, env))
        loaded = subprocess.run([sys.executable, "-c", LIST_MODULES, str(queued_count_run(runs))], cwd=checkout, env=env,
                                check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    print(json.dumps({"checkout": str(checkout), "repeats": args.repeats,
                      "worker_count_job_seconds": figures(worker), "python_pass_seconds": figures(python),
                      "python_import_torch_seconds": figures(torch), "worker_loaded": json.loads(loaded),
                      "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
