"""Single-image generators on the four OCT2017 sample scans at 128 px: GPNN against SinGAN.

For each scan (CNV, DME, DRUSEN, NORMAL, shrunk to a 128-px long side):
1. GPNN with the chosen preset (default "quick"): wall seconds for 10 variations, and in the
   same run the paper's exact search projected from one iteration per level (×10 iterations);
2. SinGAN (quick preset, `--no-singan` to skip it; about 4 minutes per scan): training seconds,
   then 10 random samples;
3. for each generator: SIFID of its 10 samples against the scan (mean; ↓) and diversity as in
   the SinGAN paper: the per-pixel std across the samples, averaged over pixels, divided by the
   std of the scan's own pixels.
Saves a grid per scan (row 1: the scan, then GPNN; row 2: the scan, then SinGAN) to --out. The
last line is one JSON object: means over the scans plus per-scan figures.
  LAB_DATA_DIR=../shared/datasets python bench/single_image.py
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

SCANS = "oct2017_samples"
MAX_SIDE = 128


def load_scan(path: Path) -> torch.Tensor:
    """A grayscale scan shrunk to a 128-px long side, 1×h×w in [-1, 1]."""
    with Image.open(path) as im:
        pixels = np.array(im.convert("L"))[..., None]
    image = to_tensor(pixels[None])
    size = pyramid_sizes(*image.shape[-2:], PRESETS["quick"].replace(max_side=MAX_SIDE))[-1]
    return F.interpolate(image, size=size, mode="bicubic", antialias=True).clamp(-1, 1)[0]


def diversity(image: torch.Tensor, samples: torch.Tensor) -> float:
    """SinGAN's diversity: mean over pixels of the std across samples, over the image's pixel std."""
    return (samples.std(0).mean() / image.std()).item()


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
    parser.add_argument("--singan", action=argparse.BooleanOptionalAction, default=True,
                        help="also train SinGAN's quick preset on each scan (about 4 minutes each)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(os.environ.get("LAB_DATA_DIR", "datasets"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    paths = sorted((data_dir / SCANS).glob("*.jpeg"))
    if not paths:
        raise SystemExit(f"no scans in {data_dir / SCANS} (set LAB_DATA_DIR)")
    generate(load_scan(paths[0]), 1, PRESETS["quick"].replace(max_side=32))  # warm-up: library loading, thread pools
    rows = []
    for path in paths:
        image = load_scan(path)
        scan = path.name.split("-")[0]
        gpnn, gpnn_seconds, paper_seconds = run_gpnn(image, args.preset, args.samples)
        row = {"scan": scan, "size": list(image.shape[-2:]), "gpnn_seconds": round(gpnn_seconds, 2),
               "gpnn_paper_projected_seconds": round(paper_seconds, 1), "sifid_gpnn": sifid_of(image, gpnn),
               "diversity_gpnn": round(diversity(image, gpnn), 3)}
        grid = [torch.cat([image[None], gpnn])]
        if args.singan:
            singan, singan_seconds = run_singan(image, args.samples)
            row.update(singan_seconds=round(singan_seconds, 1), sifid_singan=sifid_of(image, singan),
                       diversity_singan=round(diversity(image, singan), 3))
            grid.append(torch.cat([image[None], singan]))
        save_png(make_grid(from_tensor(torch.cat(grid)), ncol=args.samples + 1), args.out / f"{scan}.png")
        print(json.dumps(row), flush=True)
        rows.append(row)

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
