"""A study's recipe GANs of several seeds as one stack (gans/stack.py) against the same GANs trained one after
another (the plain reference: gans/train.py once per seed), on the data a study gives them.

    LAB_DATA_DIR=../shared/datasets .venv/bin/python bench/gan_stack.py [--members 10] [--steps 150]
        [--device cpu] [--threads 1] [--dataset dermamnist]

Each member is the quick per-class DCGAN of a study's recipe on its seed's 10% subset (DermaMNIST: 7 classes,
so a stack of 10 is 70 models). Both ways train for `--steps` generator steps; their order alternates over
`--repeats` rounds and the best time of each counts. `stack_vs_one_at_a_time` below 1 means stacking pays. One
thread by default, as a study's child runs train on this machine. bench/gpu_check.py runs the same comparison on
CUDA. The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.datasets import DatasetSpec, load_dataset  # noqa: E402
from gans.config import make_config  # noqa: E402
from gans.stack import GanStackConfig, train_stack  # noqa: E402
from gans.train import train  # noqa: E402


def compare(dataset: str = "dermamnist", members: int = 10, steps: int = 150, device: str = "cpu",
            repeats: int = 2) -> dict:
    """Seconds to train `members` seeds' recipe GANs as one stack and one after another (best of `repeats`)."""
    data = load_dataset(DatasetSpec(name=dataset, size=28))
    subsets = [data.train.stratified_subset(0.1, seed) for seed in range(members)]
    configs = [make_config("dcgan", "quick", steps=steps, seed=seed, train_fraction=0.1, device=device)
               for seed in range(members)]
    stack = GanStackConfig(members=configs)
    ways = {"stack": lambda: train_stack(stack, subsets),
            "one_at_a_time": lambda: [train(c, s) for c, s in zip(configs, subsets)]}
    best = {name: float("inf") for name in ways}
    for round_ in range(repeats):
        for name in (list(ways) if round_ % 2 == 0 else list(ways)[::-1]):
            began = time.perf_counter()
            ways[name]()
            if device == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - began)
    return {"dataset": dataset, "members": members, "models_per_member": len(data.class_names), "steps": steps,
            "device": device, "threads": torch.get_num_threads(), "stack_seconds": round(best["stack"], 2),
            "one_at_a_time_seconds": round(best["one_at_a_time"], 2),
            "stack_vs_one_at_a_time": round(best["stack"] / best["one_at_a_time"], 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dataset", default="dermamnist")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    figures = compare(args.dataset, args.members, args.steps, args.device, args.repeats)
    figures["load_before"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
