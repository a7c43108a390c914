"""How long scoring takes: 2,000 synthetic images against the 7,007 DermaMNIST training images.

Measures the lab's batched path (nearest same-class pairing by matrix products, all five piqa
metrics in batches, FID/KID/precision/recall/density/coverage, memorization) and, in the same
run, a naive per-pair Python loop (distance to every same-class real image one by one, then
each metric called on one pair at a time) on a subset, projected to 2,000 images.
The encoder is trained once per dataset and cached; its training time is reported apart.

    LAB_DATA_DIR=../shared/datasets .venv/bin/python bench/score_speed.py [--n 2000] [--naive 20]

Last line: one JSON object with `seconds` and `naive_seconds_projected`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.datasets import DatasetSpec, load_dataset  # noqa: E402
from data.imageset import ImageSet, to_unit_tensor  # noqa: E402
from metrics.encoder import train_encoder  # noqa: E402
from metrics.quality import METRICS, prepare  # noqa: E402
from metrics.scoring import ScoreConfig, build_reference, score_set  # noqa: E402


def synthetic_like(dataset, n: int, seed: int = 0) -> ImageSet:
    """Stand-in generator output: noisy copies of real held-out images (val + test), with labels."""
    pool = np.concatenate([dataset.val.images, dataset.test.images])
    labels = np.concatenate([dataset.val.labels, dataset.test.labels])
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(pool), n, replace=len(pool) < n)
    images = np.clip(pool[idx] + rng.normal(0, 8, pool[idx].shape), 0, 255).astype(np.uint8)
    return ImageSet(images, labels[idx], dataset.class_names, "synthetic")


@torch.no_grad()
def naive_seconds(synthetic: ImageSet, train: ImageSet) -> float:
    """Per-pair Python loop: nearest same-class image by scanning, then one metric call per pair."""
    modules = {k: m.build(train.channels).eval() for k, m in METRICS.items()}
    real = train.images.astype(np.float32) / 255
    started = time.perf_counter()
    for image, label in zip(synthetic.images, synthetic.labels):
        x = image.astype(np.float32) / 255
        best, best_d = -1, np.inf
        for j in np.flatnonzero(train.labels == label):
            d = float(np.sqrt(((real[j] - x) ** 2).mean()))
            if d < best_d:
                best, best_d = j, d
        a, b = to_unit_tensor(image[None]), to_unit_tensor(train.images[best][None])
        for key, metric in METRICS.items():
            modules[key](prepare(a, metric), prepare(b, metric))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--naive", type=int, default=20, help="images in the naive-loop subset")
    args = parser.parse_args()
    os.environ.setdefault("LAB_DATA_DIR", str(Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"))

    dataset = load_dataset(DatasetSpec(name="dermamnist", size=28))
    synthetic = synthetic_like(dataset, args.n)

    started = time.perf_counter()
    encoder = train_encoder(dataset.train, dataset.val)
    encoder_seconds = time.perf_counter() - started
    print(f"encoder: {encoder.name}, {encoder_seconds:.1f}s (trained {encoder.info['train_seconds']}s once, cached)")

    started = time.perf_counter()
    reference = build_reference(dataset, encoder)
    reference_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = score_set(synthetic, reference, ScoreConfig(pairings=["nearest"]))
    set_seconds = time.perf_counter() - started
    seconds = reference_seconds + set_seconds
    print(f"batched: reference (real features, held-out distances) {reference_seconds:.1f}s, "
          f"{args.n} images scored {set_seconds:.1f}s, total {seconds:.1f}s")
    for key, e in result.pairings["nearest"].metrics.items():
        print(f"  {METRICS[key].name:8s}{METRICS[key].arrow} {e.mean:.4f} [{e.lo:.4f}, {e.hi:.4f}] n={e.n}")
    d = result.distribution
    print(f"  FID {d.fid:.2f}  KID {d.kid:.4f}  precision {d.precision:.3f}  recall {d.recall:.3f}  "
          f"density {d.density:.3f}  coverage {d.coverage:.3f}")

    subset = synthetic.take(np.arange(args.naive))
    naive = naive_seconds(subset, dataset.train)
    projected = naive * args.n / args.naive
    print(f"naive per-pair loop: {args.naive} images in {naive:.1f}s -> {projected:.0f}s projected for {args.n} "
          f"(pairing + five metrics only; the batched path also did distribution metrics and memorization)")
    print(json.dumps({"n_synthetic": args.n, "n_train": len(dataset.train), "seconds": round(seconds, 2),
                      "set_seconds": round(set_seconds, 2), "reference_seconds": round(reference_seconds, 2),
                      "encoder_seconds": round(encoder_seconds, 2),
                      "encoder_train_seconds": encoder.info["train_seconds"], "naive_subset": args.naive,
                      "naive_seconds": round(naive, 2), "naive_seconds_projected": round(projected, 1),
                      "speedup": round(projected / seconds, 1), "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
