"""Folder import and augmentation throughput, each against a plain reference loop in the same run.

Builds an OCT2017-style folder of JPEG crops from the four real B-scans in a temporary directory,
then times: the cold import (decode, detect channels, resize, write the cache), a warm load
from the cache (split included), a plain PIL open/convert/resize loop over the same files, and
the default augmentation pipeline on DermaMNIST against a bare numpy flip.
Usage: LAB_DATA_DIR=../shared/datasets .venv/bin/python bench/data_import.py [--images 400] [--size 64]
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
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data import folder  # noqa: E402
from data.augment import DEFAULT_PIPELINE, apply, build_pipeline  # noqa: E402
from data.datasets import DatasetSpec, load_dataset  # noqa: E402
from data.paths import data_dir  # noqa: E402


def make_folder(root: Path, images: int) -> list[Path]:
    rng = np.random.default_rng(0)
    scans = sorted((data_dir() / "oct2017_samples").glob("*.jpeg"))
    paths = []
    for i in range(images):
        source = scans[i % len(scans)]
        label = source.name.split("-")[0]
        (root / label).mkdir(parents=True, exist_ok=True)
        with Image.open(source) as scan:
            w, h = scan.size
            x, y = int(rng.integers(0, w // 4)), int(rng.integers(0, h // 4))
            path = root / label / f"{label}-{i // 12}-{i}.jpeg"
            scan.crop((x, y, x + 3 * w // 4, y + 3 * h // 4)).save(path, quality=90)
        paths.append(path)
    return paths


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LAB_CACHE_DIR"] = str(Path(tmp) / "cache")
        paths = make_folder(Path(tmp) / "oct", args.images)
        spec = DatasetSpec(source="folder", name="bench", size=args.size, path=str(Path(tmp) / "oct"))
        reference = timed(lambda: np.stack([np.asarray(Image.open(p).convert("L").resize((args.size, args.size)))
                                            for p in paths]))
        cold = timed(lambda: folder.import_folder(spec))
        warm = timed(lambda: folder.load(spec))
    derma = load_dataset(DatasetSpec()).train.images[:2000]
    pipeline = build_pipeline(DEFAULT_PIPELINE, strength=1.0, p=0.5)
    augment = timed(lambda: apply(pipeline, derma, seed=0))
    flip = timed(lambda: np.ascontiguousarray(derma[:, :, ::-1]))
    figures = {
        "images": args.images, "size": args.size,
        "import_cold_images_per_s": round(args.images / cold, 1),
        "reference_pil_loop_images_per_s": round(args.images / reference, 1),
        "load_from_cache_s": round(warm, 3),
        "augment_default_pipeline_images_per_s": round(len(derma) / augment, 1),
        "reference_numpy_flip_images_per_s": round(len(derma) / max(flip, 1e-9), 1),
    }
    for key, value in figures.items():
        print(f"{key:40s} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
