"""How long SinGAN takes on this machine: the fast schedule against the original one.

1. Trains the "quick" preset on an OCT B-scan at a 128-px long side (6 levels, 3 levels trained
   concurrently) and reports the wall time.
2. Measures, in the same process, the per-iteration time of each level under SinGAN's original
   schedule (one level at a time, 3 critic + 3 generator updates, 5-layer stages) and projects
   the total for 2000 iterations per level.
3. Trains the "tiny" preset on one 28×28 PneumoniaMNIST image.

Writes sample grids (real, reconstruction, variations) to --out. The last line is one JSON object.
  LAB_DATA_DIR=../shared/datasets python bench/singan_speed.py
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
from data.grid import make_grid, save_png  # noqa: E402
from data.imageset import from_tensor, to_tensor  # noqa: E402
from gans.singan import SinGAN, SinGanSettings, load_image  # noqa: E402
from gans.singan_train import PRESETS  # noqa: E402

OCT = "oct2017_samples/CNV-53018-1.jpeg"
ORIGINAL_ITERS = 2000


def train(image: np.ndarray, settings: SinGanSettings, label: str) -> tuple[SinGAN, float]:
    torch.manual_seed(0)
    model = SinGAN(to_tensor(image[None]), settings, seed=0)
    started = level_started = time.perf_counter()
    while not model.finished:
        model.step()
        if model.level_done:
            now = time.perf_counter()
            print(f"{label}: level {model.stage} {model.sizes[model.stage]} {now - level_started:6.1f}s "
                  f"rec RMSE {model.reconstruction_error():.3f} noise amp {model.amps[-1]:.4f}", flush=True)
            level_started = now
    return model, time.perf_counter() - started


def save_variations(model: SinGAN, path: Path) -> None:
    """Rows: real + reconstruction + 6 from noise; then real + 7 injected at each level 1..3."""
    real = model.reals[-1].cpu()
    rows = [torch.cat([real, model.reconstruct().clamp(-1, 1).cpu(), model.sample(6, seed=1)])]
    for level in range(1, min(4, len(model.sizes))):
        rows.append(torch.cat([real, model.sample(7, seed=level, inject_stage=level)]))
    save_png(make_grid(from_tensor(torch.cat(rows)), ncol=8), path)


def original_schedule_seconds(image: np.ndarray, max_side: int, stages: int, probe: int = 6) -> list[float]:
    """Seconds per iteration of each level under SinGAN's original schedule (last `probe`-2 timed)."""
    paper = {**PRESETS["paper"], "max_side": max_side, "stages": stages, "iters": probe}
    model = SinGAN(to_tensor(image[None]), SinGanSettings(**paper), seed=0)
    per_level = []
    while not model.finished:
        start = None
        for i in range(probe):
            if i == 2:  # skip the level's first steps (allocation, kernel selection)
                start = time.perf_counter()
            model.step()
        per_level.append((time.perf_counter() - start) / (probe - 2))
    return per_level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench/singan"))
    parser.add_argument("--iters", type=int, help="override the quick preset's iterations of the finest level")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(os.environ.get("LAB_DATA_DIR", "datasets"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    scan = load_image(data_dir / OCT)
    quick = SinGanSettings(**{**PRESETS["quick"], **({"iters": args.iters} if args.iters else {})})
    model, seconds_128 = train(scan, quick, "128px quick")
    save_variations(model, args.out / "oct_128px.png")

    per_level = original_schedule_seconds(scan, quick.max_side, quick.stages)
    projected = ORIGINAL_ITERS * sum(per_level)
    print("original schedule, s/iteration per level: " + ", ".join(f"{s:.3f}" for s in per_level))

    pneumonia = load_dataset(DatasetSpec(name="pneumoniamnist", size=28)).train
    small, seconds_28 = train(pneumonia.images[0], SinGanSettings(**PRESETS["tiny"]), "28px tiny")
    save_variations(small, args.out / "pneumonia_28px.png")

    print(json.dumps({
        "seconds_128px": round(seconds_128, 1),
        "projected_sequential_seconds": round(projected, 1),
        "speedup": round(projected / seconds_128, 1),
        "seconds_28px": round(seconds_28, 1),
        "iters_per_level_quick": [model.level_iters(level) for level in range(len(model.sizes))],
        "sizes_128px": model.sizes,
        "threads": torch.get_num_threads(),
        "load_average_at_end": round(os.getloadavg()[0], 1),
        "grids": str(args.out),
    }))


if __name__ == "__main__":
    main()
