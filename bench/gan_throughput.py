"""GAN training throughput (real images per second) for each GAN at 28 and 64 px, next to a
plain reference DCGAN loop written minimally here (same architecture, same batch), measured
in the same run, interleaved with ours in alternating order so both see the same machine load
(best of `--repeats` calls each).

Our GANs run through the lab's trainer (`gans.train.train`, no run directory: the job's
logging adds one event per `log_every` steps). The last line is one JSON object; its
`ratio_vs_reference` is our DCGAN at 64 px divided by the reference (target ≥ 0.95).
Usage: .venv/bin/python bench/gan_throughput.py [--width 32] [--batch 64] [--steps 20] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.device import resolve_device  # noqa: E402
from data.imageset import ImageSet  # noqa: E402
from gans import REGISTRY  # noqa: E402
from gans.config import make_config  # noqa: E402
from gans.train import train  # noqa: E402


def random_images(size: int, n: int = 2048, classes: int = 7) -> ImageSet:
    """Throughput does not depend on content: uniform noise images of the requested size."""
    rng = np.random.default_rng(0)
    return ImageSet(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), rng.integers(0, classes, n),
                    [f"class{k}" for k in range(classes)])


def reference_dcgan(images: ImageSet, width: int, latent: int, batch: int, steps: int, device) -> None:
    """The PyTorch examples/dcgan loop, minimal: inline networks, BCE, Adam(2e-4, 0.5)."""
    size, n_up = images.size, int(np.log2(images.size // (7 if images.size == 28 else 4)))
    widths = [width * 2 ** (n_up - 1 - i) for i in range(n_up)]
    g = [nn.ConvTranspose2d(latent, widths[0], 7 if size == 28 else 4, 1, 0, bias=False),
         nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
    for a, b in zip(widths, widths[1:]):
        g += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
    net_g = nn.Sequential(*g, nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1), nn.Tanh()).to(device)
    d = [nn.Conv2d(3, widths[-1], 4, 2, 1), nn.LeakyReLU(0.2, True)]
    for a, b in zip(widths[::-1], widths[::-1][1:]):
        d += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, True)]
    net_d = nn.Sequential(*d, nn.Conv2d(widths[0], 1, 7 if size == 28 else 4, 1, 0), nn.Flatten()).to(device)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = nn.BCEWithLogitsLoss()
    data = images.to_tensor().to(device)
    ones, zeros = torch.ones(batch, 1, device=device), torch.zeros(batch, 1, device=device)
    for _ in range(steps):
        real = data[torch.randint(len(data), (batch,), device=device)]
        fake = net_g(torch.randn(batch, latent, 1, 1, device=device))
        loss_d = criterion(net_d(real), ones) + criterion(net_d(fake.detach()), zeros)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = criterion(net_d(fake), ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def images_per_second(fn, images_per_call: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return images_per_call / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--latent", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="generator steps per timed call")
    parser.add_argument("--repeats", type=int, default=4, help="best of this many timed calls")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    figures, reference = {}, {}
    for size in (28, 64):
        images = random_images(size)

        def ours(gan):
            config = make_config(gan, "quick", per_class=False, width=args.width, latent=args.latent,
                                 batch_size=args.batch, steps=args.steps, device=str(device), label_smoothing=0.0)
            return (lambda: train(config, images=images)), args.batch * config.d_steps * args.steps

        def ref():
            reference_dcgan(images, args.width, args.latent, args.batch, args.steps, device)

        ours_dcgan, per_call = ours("dcgan")
        ref(), ours_dcgan()  # warm-up
        ref_rates, our_rates = [], []
        for repeat in range(args.repeats):  # interleaved in alternating order, so both see the same load
            pair = [(ref_rates, ref, args.batch * args.steps), (our_rates, ours_dcgan, per_call)]
            for rates, fn, count in pair[::-1] if repeat % 2 else pair:
                rates.append(images_per_second(fn, count, 1))
        reference[size], figures[f"dcgan@{size}"] = max(ref_rates), max(our_rates)
        print(f"{size:3d} px  reference dcgan {reference[size]:8.1f} img/s   our dcgan {figures[f'dcgan@{size}']:8.1f} "
              f"img/s   ratio {figures[f'dcgan@{size}'] / reference[size]:.3f}", flush=True)
        for gan in REGISTRY:
            if gan == "dcgan":
                continue
            fn, per_call = ours(gan)
            figures[f"{gan}@{size}"] = images_per_second(fn, per_call, args.repeats)
            print(f"{size:3d} px  {gan:8s} {figures[f'{gan}@{size}']:8.1f} img/s", flush=True)
    print(json.dumps({
        "device": str(device), "threads": torch.get_num_threads(), "width": args.width, "latent": args.latent,
        "batch": args.batch, "steps": args.steps, "images_per_s": {k: round(v, 1) for k, v in figures.items()},
        "reference_dcgan_images_per_s": {str(k): round(v, 1) for k, v in reference.items()},
        "ratio_vs_reference": round(figures["dcgan@64"] / reference[64], 3),
        "ratio_vs_reference_28": round(figures["dcgan@28"] / reference[28], 3),
    }))


if __name__ == "__main__":
    main()
