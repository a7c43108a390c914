"""How long scoring takes: 2,000 synthetic images against the 7,007 DermaMNIST training images.

Measures the lab's batched path (nearest same-class pairing by matrix products, all five piqa
metrics in batches, memorization, FID/KID/precision/recall/density/coverage in the lab encoder's
space) without and then with the Inception-v3 feature space (the default: a stratified 2,000-image
real reference, computed once per dataset and cached, and at most 1,000 images per set), the
Inception reference timed both computed and read from its cache. In the same run, a naive per-pair
Python loop (distance to every same-class real image one by one, then each metric called on one
pair at a time) on a subset, projected to 2,000 images. The encoder is trained once per dataset
and cached; its training time is reported apart. The load average is printed beside the timings,
since other processes on the machine slow everything alike.

    LAB_DATA_DIR=../shared/datasets .venv/bin/python bench/score_speed.py [--n 2000] [--naive 20]
        [--inception-real 2000] [--inception-synthetic 1000]

Last line: one JSON object with `seconds` (without Inception), `inception_seconds` (with it, the
real reference cached), `inception_reference_seconds` (computing that reference once) and
`naive_seconds_projected`.

`--jobs` measures whole score jobs instead (`lab.kinds.score.run`, in this process, in a fresh runs
folder and cache): two in a row on the same data, each scoring one set of `--n` synthetic images with
the pre-screen on. The first computes everything that depends on the real data alone (the lab encoder,
Inception's real reference, the real-only pre-screen classifier), the plain reference; the second finds
what the dataset's cache holds. The JSON line gives both times, what the second took from the cache,
and whether its numbers equal the first's. Runs of other versions of the lab can be compared with it.

    LAB_DATA_DIR=../shared/datasets .venv/bin/python bench/score_speed.py --jobs [--dataset pneumoniamnist]
        [--n 400] [--inception-real 200] [--inception-synthetic 200] [--encoder-steps 400] [--prescreen-steps 200]
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
from data.device import resolve_device  # noqa: E402
from data.imageset import ImageSet, to_unit_tensor  # noqa: E402
from metrics.encoder import train_encoder  # noqa: E402
from metrics.inception import reference_path  # noqa: E402
from metrics.quality import METRICS, prepare  # noqa: E402
from metrics.scores import ENCODER, INCEPTION  # noqa: E402
from metrics.scoring import ScoreConfig, build_reference, sample_of, score_set  # noqa: E402


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


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def score_jobs(args) -> None:
    """Two score jobs in a row on the same data (see the module docstring)."""
    import tempfile

    from data.synthetic import save_set
    from lab.engine.runs import Run
    from lab.kinds.score import run as score_job

    root = Path(tempfile.mkdtemp(prefix="score-jobs-"))
    os.environ.update(LAB_RUNS_DIR=str(root / "runs"), LAB_CACHE_DIR=str(root / "runs" / "cache"))
    spec = DatasetSpec(name=args.dataset, size=28)
    dataset = load_dataset(spec)
    holder = Run.create("gan", {}, name="bench")
    holder.write_status("done")
    path = save_set(synthetic_like(dataset, args.n), holder.artifacts, "noisy", generator="bench",
                    dataset=spec.to_dict())
    config = {"sets": [str(path)], "inception_real_images": args.inception_real,
              "inception_synthetic_images": args.inception_synthetic, "prescreen": True,
              "prescreen_steps": args.prescreen_steps, "encoder": {"min_steps": args.encoder_steps}}
    timings, results = [], []
    load_before = os.getloadavg()[0]
    for _ in range(2):
        run = Run.create("score", config)
        _, seconds = timed(score_job, run)
        scores = json.loads((run.artifacts / "scores.json").read_text())
        prescreen = json.loads((run.artifacts / "prescreen.json").read_text())
        timings.append(seconds)
        results.append((scores, prescreen))
        cached = scores.get("cached", []) + prescreen.get("cached", [])
        print(f"score job {len(timings)}: {seconds:.1f}s; from the cache: {', '.join(cached) or 'nothing'}")
    (first, first_pre), (second, second_pre) = results
    same = [{**s, "seconds": None} for s in first["sets"]] == [{**s, "seconds": None} for s in second["sets"]] \
        and first_pre["real"]["scores"] == second_pre["real"]["scores"]
    print(json.dumps({"dataset": args.dataset, "n_synthetic": args.n, "first_job_seconds": round(timings[0], 1),
                      "second_job_seconds": round(timings[1], 1), "speedup": round(timings[0] / timings[1], 2),
                      "second_job_cached": second.get("cached", []) + second_pre.get("cached", []),
                      "same_numbers": same, "encoder_min_steps": args.encoder_steps,
                      "prescreen_steps": args.prescreen_steps, "inception_real_images": args.inception_real,
                      "inception_synthetic_images": args.inception_synthetic, "threads": torch.get_num_threads(),
                      "load_average_before": round(load_before, 1),
                      "load_average_after": round(os.getloadavg()[0], 1)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", action="store_true", help="two whole score jobs in a row on the same data")
    parser.add_argument("--dataset", default="pneumoniamnist", help="--jobs: the MedMNIST flag, at 28 px")
    parser.add_argument("--encoder-steps", type=int, default=400, help="--jobs: the encoder's minimum steps")
    parser.add_argument("--prescreen-steps", type=int, default=200, help="--jobs: each pre-screen classifier's steps")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--naive", type=int, default=20, help="images in the naive-loop subset")
    parser.add_argument("--inception-real", type=int, default=ScoreConfig().inception_real_images)
    parser.add_argument("--inception-synthetic", type=int, default=ScoreConfig().inception_synthetic_images)
    args = parser.parse_args()
    os.environ.setdefault("LAB_DATA_DIR", str(Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"))
    if args.jobs:
        return score_jobs(args)

    dataset = load_dataset(DatasetSpec(name="dermamnist", size=28))
    synthetic = synthetic_like(dataset, args.n)
    load_before = os.getloadavg()[0]

    encoder, encoder_seconds = timed(train_encoder, dataset.train, dataset.val)
    print(f"encoder: {encoder.name}, {encoder_seconds:.1f}s (trained {encoder.info['train_seconds']}s in "
          f"{encoder.info['steps']} steps once, cached); {encoder.withheld_reason() or 'its numbers are reported'}")

    without = ScoreConfig(pairings=["nearest"], inception=False)
    reference, reference_seconds = timed(build_reference, dataset, without, encoder)
    result, set_seconds = timed(score_set, synthetic, reference, without)
    seconds = reference_seconds + set_seconds
    print(f"batched, encoder space only: reference (real features, held-out distances) {reference_seconds:.1f}s, "
          f"{args.n} images scored {set_seconds:.1f}s, total {seconds:.1f}s")
    for key, e in result.pairings["nearest"].metrics.items():
        print(f"  {METRICS[key].name:8s}{METRICS[key].arrow} {e.mean:.4f} [{e.lo:.4f}, {e.hi:.4f}] n={e.n}")

    with_inception = without.replace(inception=True, inception_real_images=args.inception_real,
                                     inception_synthetic_images=args.inception_synthetic)
    cached = reference_path(sample_of(dataset.train, args.inception_real, with_inception.seed), dataset.spec)
    cached.unlink(missing_ok=True)  # time the real reference computed once, then read from its cache
    _, computed_seconds = timed(build_reference, dataset, with_inception, encoder)
    reference, cached_seconds = timed(build_reference, dataset, with_inception, encoder)
    result, inception_set_seconds = timed(score_set, synthetic, reference, with_inception)
    inception_seconds = cached_seconds + inception_set_seconds
    inception_images = min(args.n, args.inception_synthetic)
    print(f"batched, with Inception: real reference of {args.inception_real} images computed in "
          f"{computed_seconds:.1f}s once ({cached_seconds:.1f}s from the cache), {args.n} images scored "
          f"({inception_images} through Inception) {inception_set_seconds:.1f}s, total {inception_seconds:.1f}s")
    for space in (INCEPTION, ENCODER):
        d = result.distribution_in(space)
        print(f"  {d.feature_space}: FID {d.fid:.2f}  KID {d.kid:.4f}  precision {d.precision:.3f}  "
              f"recall {d.recall:.3f}  density {d.density:.3f}  coverage {d.coverage:.3f}")

    subset = synthetic.take(np.arange(args.naive))
    naive = naive_seconds(subset, dataset.train)
    projected = naive * args.n / args.naive
    print(f"naive per-pair loop: {args.naive} images in {naive:.1f}s -> {projected:.0f}s projected for {args.n} "
          f"(pairing + five metrics only; the batched path also did distribution metrics and memorization)")
    print(json.dumps({"n_synthetic": args.n, "n_train": len(dataset.train), "seconds": round(seconds, 2),
                      "set_seconds": round(set_seconds, 2), "reference_seconds": round(reference_seconds, 2),
                      "inception_seconds": round(inception_seconds, 2),
                      "inception_set_seconds": round(inception_set_seconds, 2),
                      "inception_reference_seconds": round(computed_seconds, 2),
                      "inception_reference_cached_seconds": round(cached_seconds, 2),
                      "inception_real_images": args.inception_real, "inception_synthetic_images": inception_images,
                      "inception_seconds_per_image": round(computed_seconds / args.inception_real, 3),
                      "encoder_seconds": round(encoder_seconds, 2),
                      "encoder_train_seconds": encoder.info["train_seconds"], "encoder_steps": encoder.info["steps"],
                      "encoder_val_balanced_accuracy": round(encoder.info["val_balanced_accuracy"], 3),
                      "naive_subset": args.naive, "naive_seconds": round(naive, 2),
                      "naive_seconds_projected": round(projected, 1), "speedup": round(projected / seconds, 1),
                      "device": str(resolve_device("auto")), "threads": torch.get_num_threads(),
                      "load_average_before": round(load_before, 1),
                      "load_average_after": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
