"""Single-image generators on the four OCT2017 sample scans at 128 px: GPNN against SinGAN.

For each scan (CNV, DME, DRUSEN, NORMAL, shrunk to a 128-px long side):
1. GPNN with the chosen preset (default "quick"): wall seconds for 10 variations, and in the
   same run the paper's exact search projected from one iteration per level (×10 iterations);
2. SinGAN (quick preset; about 4 minutes per scan on an idle machine): training seconds, then 10
   random samples, on the first `--singan-scans` scans (default all four; 0 skips SinGAN);
3. for each generator: SIFID of its 10 samples against the scan (mean; ↓), diversity as in the
   SinGAN paper (the per-pixel std across the samples, averaged over pixels, divided by the std of
   the scan's own pixels) and the mean pixel distance (/255) of the samples to the scan and to each
   other (lab/kinds/singan.py `diversity`, as in every single-image run's summary.json).
Saves a grid per scan (row 1: the scan, then GPNN; row 2: the scan, then SinGAN) to --out, and with
`--docs DIR` a small copy (the scan and 5 samples per generator) for the README. The last line is
one JSON object: means over the scans plus per-scan figures.
  LAB_DATA_DIR=../shared/datasets python bench/single_image.py [--singan-scans 1] [--docs docs/single_image]
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
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.grid import make_grid, save_png  # noqa: E402
from data.imageset import from_tensor, to_tensor  # noqa: E402
from gans.gpnn import PRESETS, generate, pyramid_sizes  # noqa: E402
from metrics.diversity import diversity  # noqa: E402

SCANS = "oct2017_samples"
MAX_SIDE = 128


def load_scan(path: Path) -> torch.Tensor:
    """A grayscale scan shrunk to a 128-px long side, 1×h×w in [-1, 1]."""
    with Image.open(path) as im:
        pixels = np.array(im.convert("L"))[..., None]
    image = to_tensor(pixels[None])
    size = pyramid_sizes(*image.shape[-2:], PRESETS["quick"].replace(max_side=MAX_SIDE))[-1]
    return F.interpolate(image, size=size, mode="bicubic", antialias=True).clamp(-1, 1)[0]


def figures(image: torch.Tensor, samples: torch.Tensor) -> dict:
    """SinGAN's diversity (pixel std across the samples over the scan's) and the pixel distances of
    the samples to the scan and to each other (/255)."""
    d = diversity(from_tensor(image[None])[0], from_tensor(samples), None)
    return {"diversity": d["pixel_std"], "to_scan": d["to_image"], "between": d["between"]}


def save_grids(scan: str, rows: list[torch.Tensor], args: argparse.Namespace) -> None:
    """The scan's grid in --out and, with --docs, its small copy for the README."""
    save_png(make_grid(from_tensor(torch.cat(rows)), ncol=args.samples + 1), args.out / f"{scan}.png")
    if args.docs:
        docs_grid(rows, args.docs / f"{scan}.png")


def docs_grid(rows: list[torch.Tensor], path: Path, samples: int = 5) -> None:
    """A small grid for the README: each row the scan, then `samples` samples (grayscale PNG)."""
    save_png(make_grid(from_tensor(torch.cat([row[: samples + 1] for row in rows])), ncol=samples + 1), path)


def sifid_of(image: torch.Tensor, samples: torch.Tensor) -> float | None:
    """Mean SIFID of the samples against the image, or None where the Inception weights are missing."""
    from metrics.inception import InceptionUnavailable, sifid

    try:
        return round(sifid(from_tensor(image[None])[0], from_tensor(samples), device="cpu"), 4)
    except InceptionUnavailable as e:
        print(f"SIFID left out: {e}", flush=True)
        return None


def run_gpnn(image: torch.Tensor, preset: str, n: int) -> tuple[torch.Tensor, float, float]:
    """Samples, wall seconds, and the paper settings' projected seconds (one exact round per level × T)."""
    settings = PRESETS[preset].replace(max_side=MAX_SIDE)
    started = time.perf_counter()
    samples = generate(image, n, settings, seed=0)
    seconds = time.perf_counter() - started
    paper = PRESETS["paper"].replace(max_side=MAX_SIDE)
    started = time.perf_counter()
    generate(image, n, paper.replace(iters=1), seed=0)
    projected = (time.perf_counter() - started) * paper.iters
    return samples, seconds, projected


def run_singan(image: torch.Tensor, n: int) -> tuple[torch.Tensor, float]:
    """Samples from noise and the training seconds of SinGAN's quick preset."""
    from gans.singan import SinGAN, SinGanSettings
    from gans.singan_train import PRESETS as SINGAN_PRESETS
    from gans.singan_train import train

    model = SinGAN(image[None], SinGanSettings.from_dict(SINGAN_PRESETS["quick"]), seed=0)
    seconds = train(model)
    return model.sample(n, seed=0), seconds


def mean(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return round(float(np.mean(known)), 4) if known else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench/single_image"))
    parser.add_argument("--preset", default="quick", choices=tuple(PRESETS), help="GPNN preset")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--singan-scans", type=int, default=4,
                        help="train SinGAN's quick preset on this many scans (about 4 minutes each; 0: none)")
    parser.add_argument("--docs", type=Path, help="also write small grids for the README here")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(os.environ.get("LAB_DATA_DIR", "datasets"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    paths = sorted((data_dir / SCANS).glob("*.jpeg"))
    if not paths:
        raise SystemExit(f"no scans in {data_dir / SCANS} (set LAB_DATA_DIR)")
    generate(load_scan(paths[0]), 1, PRESETS["quick"].replace(max_side=32))  # warm-up: library loading, thread pools
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
    rows, grids = [], {}
    images = {path.name.split("-")[0]: load_scan(path) for path in paths}
    for scan, image in images.items():  # GPNN on every scan first: a slow SinGAN never hides its figures
        gpnn, gpnn_seconds, paper_seconds = run_gpnn(image, args.preset, args.samples)
        rows.append({"scan": scan, "size": list(image.shape[-2:]), "gpnn_seconds": round(gpnn_seconds, 2),
                     "gpnn_paper_projected_seconds": round(paper_seconds, 1), "sifid_gpnn": sifid_of(image, gpnn),
                     **{f"{name}_gpnn": value for name, value in figures(image, gpnn).items()}})
        grids[scan] = [torch.cat([image[None], gpnn])]
        save_grids(scan, grids[scan], args)
        print(json.dumps(rows[-1]), flush=True)
    for row in rows[:args.singan_scans]:
        image = images[row["scan"]]
        singan, singan_seconds = run_singan(image, args.samples)
        row.update(singan_seconds=round(singan_seconds, 1), sifid_singan=sifid_of(image, singan),
                   **{f"{name}_singan": value for name, value in figures(image, singan).items()})
        grids[row["scan"]].append(torch.cat([image[None], singan]))
        save_grids(row["scan"], grids[row["scan"]], args)
        print(json.dumps(row), flush=True)

    def average(key: str) -> float | None:
        return mean([row.get(key) for row in rows])

    print(json.dumps({
        "gpnn_preset": args.preset,
        "gpnn_seconds_128px": average("gpnn_seconds"),
        "gpnn_paper_projected_seconds_128px": average("gpnn_paper_projected_seconds"),
        "singan_seconds_128px": average("singan_seconds"),
        "sifid_gpnn": average("sifid_gpnn"),
        "sifid_singan": average("sifid_singan"),
        "diversity_gpnn": average("diversity_gpnn"),
        "diversity_singan": average("diversity_singan"),
        "samples": args.samples,
        "scans": rows,
        "threads": torch.get_num_threads(),
        "load_average_at_end": round(os.getloadavg()[0], 1),
        "grids": str(args.out),
    }))


if __name__ == "__main__":
    main()
