"""Classifier training speed: our loop against a plain reference loop, and two quick-preset studies.

    LAB_DATA_DIR=../shared/datasets .venv/bin/python bench/classifier_speed.py [--steps 60] [--no-study]
        [--no-recipe] [--no-ten] [--batched auto|on|off] [--synthetic path/to/set.npz] [--threads N]
        [--child-workers N]

Our loop (classifier.train.train_classifier: uint8 tensors, batch stream, one-cycle AdamW,
bookkeeping of drawn images, one small validation pass at the end) and the reference (the same
EfficientNet and optimizer on a pre-normalised float tensor, random batches, nothing else) run
alternately in this process; the best of two rounds each is reported. The study parts run the
quick budget on 10% of DermaMNIST 28 with 3 seeds and report their wall time end to end:
`study_seconds`, real only vs real + one fixed synthetic set; `recipe_study_seconds`, real only vs
real + a DCGAN recipe (a DCGAN trained inside each seed on its subset, then sampled; target on a
2-core CPU: 900 s); `recipe_study_seconds_10_seeds`, the same two arms on 10 seeds the way the lab
runs them now (`--batched`, default auto: batched groups on CUDA, one at a time on a CPU), and
`ten_to_three_seed_ratio` = ten seeds ÷ three (the target: at most 1.0). Each study is queued as a
job and its child runs go side by side as a user's would (LAB_CHILD_WORKERS; `--child-workers 1`
measures them one after another in the study's process, as before). The last line of output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from classifier.model import build_model  # noqa: E402
from classifier.train import TrainConfig, train_classifier  # noqa: E402
from data.datasets import DatasetSpec, load_dataset  # noqa: E402
from data.imageset import ImageSet  # noqa: E402


def reference_loop(images: torch.Tensor, labels: torch.Tensor, steps: int, batch: int) -> float:
    """Images per second of the plainest loop with the same model and optimizer."""
    torch.manual_seed(0)
    model = build_model(7, images.shape[1], images.shape[2])
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        index = torch.randint(0, len(images), (batch,))
        loss = F.cross_entropy(model(images[index].contiguous(memory_format=torch.channels_last)), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def our_loop(train: ImageSet, val: ImageSet, steps: int, batch: int) -> float:
    """Images per second of the training loop, timed like the reference: after the model is built."""
    config = TrainConfig(steps=steps, batch_size=batch, eval_every=steps)
    result = train_classifier(train.images, train.labels, val.images, val.labels, 7, config, seed=0)
    return steps * batch / result.seconds


def timed_study(arms: list, root: Path, seeds: int = 3, batched: str = "off"):
    """Wall seconds of a study at the quick budget with these arms on seeds 0..seeds-1, queued as a user's
    study is (a worker process, its children side by side as lab/engine/children.py runs them), and its
    StudySummary."""
    from lab.engine import jobs
    from lab.study.config import preset
    from lab.study.summary import read_summary

    start = time.perf_counter()
    config = preset("quick").replace(arms=arms, seeds=list(range(seeds)), batched=batched)
    run = jobs.submit("study", config.to_dict(), root=root)
    state = jobs.wait(run)
    seconds = time.perf_counter() - start
    if state != "done":
        raise RuntimeError(f"the study ended {state}: {run.raw_status().get('error')} (log: {run.log_path})")
    return seconds, read_summary(run)


def quick_study(synthetic: str | None):
    """Wall seconds of a quick study of real only vs real + a synthetic set, and its StudySummary."""
    from data.synthetic import save_set
    from lab.engine.runs import Run
    from lab.study.config import ArmConfig, synthetic_arms

    data = load_dataset(DatasetSpec())
    with tempfile.TemporaryDirectory() as root:
        if synthetic is None:  # a stand-in set: mirrored real images with noise
            rng = np.random.default_rng(0)
            pick = rng.choice(len(data.train), 1400, replace=False)
            noisy = np.clip(data.train.images[pick][:, :, ::-1].astype(int) + rng.integers(-12, 13, (1400, 28, 28, 3)),
                            0, 255).astype(np.uint8)
            holder = Run.create("gan", {}, root=Path(root))
            synthetic = str(save_set(ImageSet(noisy, data.train.labels[pick], data.class_names), holder.artifacts,
                                     "noisy-flips", generator="noisy-flips"))
        return timed_study([ArmConfig("real only"), *synthetic_arms([synthetic], allow_leak=True)], Path(root))


def recipe_study(seeds: int = 3, batched: str = "off"):
    """Wall seconds of a quick study of real only vs real + a DCGAN recipe, and its StudySummary."""
    from lab.study.config import ArmConfig, recipe_arms

    with tempfile.TemporaryDirectory() as root:
        return timed_study([ArmConfig("real only"), *recipe_arms(["dcgan"])], Path(root), seeds, batched)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--no-study", action="store_true", help="skip the fixed-set study")
    parser.add_argument("--no-recipe", action="store_true", help="skip the recipe study")
    parser.add_argument("--no-ten", action="store_true", help="skip the ten-seed recipe study")
    parser.add_argument("--batched", choices=("auto", "on", "off"), default="auto",
                        help="the ten-seed study's StudyConfig.batched (default auto)")
    parser.add_argument("--synthetic", help="synthetic set for the study (default: noisy mirrored copies)")
    parser.add_argument("--child-workers", type=int, default=0,
                        help="a study's child runs side by side (LAB_CHILD_WORKERS; 0: the lab's default)")
    args = parser.parse_args()
    if args.child_workers:
        os.environ["LAB_CHILD_WORKERS"] = str(args.child_workers)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(DatasetSpec())
    train, val = data.train.stratified_subset(0.1, 0), data.val.take(np.arange(64))
    float_images = train.to_tensor()
    labels = torch.from_numpy(train.labels)
    reference_loop(float_images, labels, 3, args.batch)  # warm-up
    ours, reference = [], []
    for _ in range(2):
        reference.append(reference_loop(float_images, labels, args.steps, args.batch))
        ours.append(our_loop(train, val, args.steps, args.batch))
        print(f"reference {reference[-1]:.1f} img/s, ours {ours[-1]:.1f} img/s", flush=True)
    figures = {"reference_images_per_s": round(max(reference), 1), "ours_images_per_s": round(max(ours), 1),
               "ratio_vs_reference": round(max(ours) / max(reference), 3), "threads": torch.get_num_threads(),
               "steps": args.steps, "batch": args.batch, "study_seconds": None, "recipe_study_seconds": None,
               "recipe_study_seconds_10_seeds": None, "ten_to_three_seed_ratio": None, "batched": args.batched,
               "child_workers": None}
    studies = {"study_seconds": None if args.no_study else lambda: quick_study(args.synthetic),
               "recipe_study_seconds": None if args.no_recipe else recipe_study,
               "recipe_study_seconds_10_seeds": None if args.no_ten else lambda: recipe_study(10, args.batched)}
    for figure, study in studies.items():
        if study is None:
            continue
        seconds, summary = study()
        figures[figure] = round(seconds, 1)
        from lab.engine.executors import child_workers
        figures["child_workers"] = child_workers(len(summary.seeds) * len(summary.arms))
        for arm in summary.arms:
            m = arm.metrics["balanced_accuracy"]
            print(f"{arm.arm}: balanced accuracy {m.mean:.3f} [{m.lo:.3f}, {m.hi:.3f}] — {arm.verdict}")
    if figures["recipe_study_seconds"] and figures["recipe_study_seconds_10_seeds"]:
        figures["ten_to_three_seed_ratio"] = round(figures["recipe_study_seconds_10_seeds"] /
                                                   figures["recipe_study_seconds"], 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
