"""How good the quick presets' images are: FID and class agreement per GAN, DCGAN as the reference.

Trains each GAN's preset on DermaMNIST 28 px (no run directory), draws 200 images per class and
scores them against the real test split in the lab encoder's feature space (metrics/encoder.py:
FID there is comparable between these rows, not with Inception-based values). "class_agreement"
is the share of images the encoder assigns to the class they were drawn for (real test images:
about 0.56; chance 1/7). Saves each grid as <out>/<name>.png. The last line is one JSON object.

  LAB_DATA_DIR=../shared/datasets python bench/gan_quality.py [--gans dcgan wgan_gp] [--set lr_g=1e-4]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.datasets import DatasetSpec, load_dataset  # noqa: E402
from data.grid import make_grid, save_png  # noqa: E402
from gans import REGISTRY  # noqa: E402
from gans.config import make_config  # noqa: E402
from gans.sampling import class_grid, synthesize  # noqa: E402
from gans.train import GRID_SEED_OFFSET, train  # noqa: E402
from metrics.distribution import fid  # noqa: E402
from metrics.encoder import train_encoder  # noqa: E402


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gans", nargs="+", default=["dcgan", *[g for g in REGISTRY if g != "dcgan"]])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="override a GAN option")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/gan_quality"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}

    data = load_dataset(DatasetSpec(name="dermamnist", size=28))
    encoder = train_encoder(data.train, data.splits.get("val"))
    test = data.splits["test"]
    real_features = encoder.features(test.images)
    real_agreement = float((encoder.predict(test.images) == test.labels).mean())
    print(f"encoder: {encoder.name}; real test images agree with their labels: {real_agreement:.3f}", flush=True)

    results = {}
    for gan in args.gans:
        config = make_config(gan, args.preset, **overrides)
        started = time.perf_counter()
        model = train(config)
        seconds = time.perf_counter() - started
        synthetic = synthesize(model, args.per_class, data.train.class_names, seed=config.seed)
        results[gan] = {
            "fid": round(fid(real_features, encoder.features(synthetic.images)), 2),
            "class_agreement": round(float((encoder.predict(synthetic.images) == synthetic.labels).mean()), 3),
            "train_seconds": round(seconds, 1), "steps": config.steps}
        save_png(make_grid(class_grid(model, seed=config.seed + GRID_SEED_OFFSET), ncol=8), args.out / f"{gan}.png")
        print(f"{gan}: {results[gan]}", flush=True)
    print(json.dumps({"preset": args.preset, "overrides": overrides, "real_class_agreement": round(real_agreement, 3),
                      **results}))


if __name__ == "__main__":
    main()
