"""Warm workers: the same small study's arm jobs with cold workers and with warm ones, on the local executor.

    LAB_DATA_DIR=../shared/datasets .venv/bin/python bench/warm_workers.py [--rounds 2] [--seeds 2] [--steps 20]

The study of bench/scale_out.py (real only vs standard augmentation on 3% of PneumoniaMNIST 28, 2 slots) runs
`--rounds` times each way, alternating: LAB_WARM_WORKERS=0 (every child run a new `python -m lab worker`, the
reference) and warm (children forked by a server past the imports, lab/engine/warm.py). Reported per way: the
mean arm job seconds (status.json's start, which counts a worker's start-up, to its end), the mean seconds from
that start to the arm's first event (start-up and data loading), the study's wall time, and the load average
before and after (the machine may be shared). The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from classifier.train import TrainConfig  # noqa: E402
from lab.engine import jobs  # noqa: E402
from lab.engine.children import read_children  # noqa: E402
from lab.study.config import ArmConfig, StudyConfig  # noqa: E402
from scale_out import arm_seconds  # noqa: E402


def start_up_seconds(child) -> float:
    """From a finished arm's recorded start to its first event (the worker's start-up and the data's loading)."""
    return min(event["t"] for event in child.events()) - child.raw_status()["started"]


def one_study(config: StudyConfig, root: Path) -> tuple[float, list[float], list[float]]:
    os.environ["LAB_RUNS_DIR"] = str(root)
    study = jobs.submit("study", config.to_dict(), root=root)
    if jobs.wait(study, poll=0.1) != "done":
        raise SystemExit(f"the study failed: see {study.log_path}")
    status = study.raw_status()
    arms = list(read_children(study).values())
    return status["finished"] - status["started"], [arm_seconds(a) for a in arms], [start_up_seconds(a) for a in arms]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    config = StudyConfig(dataset={"name": "pneumoniamnist", "size": 28}, train_fraction=0.03,
                         seeds=list(range(args.seeds)),
                         arms=[ArmConfig("real only"), ArmConfig("flips", "standard_aug")],
                         train=TrainConfig(steps=args.steps, batch_size=16, eval_every=args.steps, device="cpu"))
    os.environ.update(LAB_EXECUTOR="local", LAB_MAX_JOBS="2", OMP_NUM_THREADS="1")
    load_before = os.getloadavg()
    figures = {"cold": ([], [], []), "warm": ([], [], [])}
    with tempfile.TemporaryDirectory(prefix="warm-workers-") as tmp:
        for round_ in range(args.rounds):
            for way in ("cold", "warm"):
                os.environ["LAB_WARM_WORKERS"] = "0" if way == "cold" else "1"
                wall, arms, start_ups = one_study(config, Path(tmp) / f"{way}-{round_}")
                for kept, new in zip(figures[way], ([wall], arms, start_ups)):
                    kept.extend(new)
                print(f"round {round_ + 1}, {way}: study {wall:.1f} s, arm job {statistics.mean(arms):.2f} s, "
                      f"start-up {statistics.mean(start_ups):.2f} s", flush=True)
    result = {f"{way}_{name}": round(statistics.mean(values), 2)
              for way, lists in figures.items() for name, values in zip(("study_seconds", "arm_job_seconds",
                                                                         "start_up_seconds"), lists)}
    result.update(load_before=[round(x, 2) for x in load_before], load_after=[round(x, 2) for x in os.getloadavg()],
                  rounds=args.rounds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
