"""How good the quick presets' images are, with and without the small-data options (DiffAugment, EMA).

For every GAN and seed it trains twice on the chosen data (--dataset at 28 px, --fraction of its
training split; the stratified subset depends on the seed): without DiffAugment and with the
--diffaugment policy. Both trainings keep a moving average of the generator's weights (--ema decay),
which does not change training, so each is scored twice, drawing from the raw weights and from the
average. That gives four arms (--arms chooses; "plain" is the baseline of every difference):

  plain            no DiffAugment, raw weights
  ema              no DiffAugment, averaged weights
  diffaugment      DiffAugment, raw weights
  diffaugment+ema  DiffAugment, averaged weights

Each arm draws --per-class images per class and is compared with the real test split:
- "fid_encoder": FID in the lab encoder's feature space (metrics/encoder.py, trained on the full
  training split; comparable between these rows, not with Inception-based values);
- "class_agreement": the share of images the encoder assigns to the class they were drawn for;
- "fid_inception" (with --inception, for the --inception-arms only: about 0.4 s per image on a
  2-core CPU): FID in the TF-FID Inception-v3 space (metrics/inception.py) of the first
  --inception-images synthetic images of every class in turn against the whole test split.
Lower FID is better; FIDs from different sample sizes or feature spaces are not comparable.
Every other setting is the GAN's --preset (with --set overrides), except that the arms set
`diffaugment` and `ema` themselves. Grids go to <out>/<dataset>_<gan>_seed<k>_<arm>.png. One line per
arm as it finishes; the last line is one JSON object: every value, and per GAN and arm the mean and
standard deviation over seeds and the mean paired difference from "plain".

  LAB_DATA_DIR=../shared/datasets python bench/gan_quality.py --gans dcgan --dataset pneumoniamnist \\
      --fraction 0.1 --seeds 0 1 2 --inception
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.datasets import DatasetSpec, load_dataset  # noqa: E402
from data.grid import make_grid, save_png  # noqa: E402
from gans import REGISTRY  # noqa: E402
from gans.config import make_config  # noqa: E402
from gans.sampling import class_grid, synthesize  # noqa: E402
from gans.train import GRID_SEED_OFFSET, train, training_images  # noqa: E402
from metrics.distribution import fid  # noqa: E402
from metrics.encoder import train_encoder  # noqa: E402

ARMS = ("plain", "ema", "diffaugment", "diffaugment+ema")


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def raw_weights(gan):
    """The same trained GAN, drawing from its raw weights instead of their moving average."""
    raw = copy.copy(gan)
    raw.generator_ema = None
    return raw


def interleaved(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first `n` images taking one image of every class in turn (labels sorted by class)."""
    rank = np.concatenate([np.arange(count) for count in np.bincount(labels)])
    return np.lexsort((labels, rank))[:n]


def summary(values: dict[str, dict[str, dict]]) -> dict:
    """Per arm: mean and sd over seeds of each figure, and the mean paired difference from "plain"."""
    seeds = list(values)
    result = {}
    for arm in [arm for arm in ARMS if arm in values[seeds[0]]]:
        figures = {}
        for name in values[seeds[0]][arm]:
            series = np.array([values[s][arm][name] for s in seeds], dtype=float)
            sd = round(float(series.std(ddof=1)), 3) if len(seeds) > 1 else None
            figures[name] = {"mean": round(float(series.mean()), 3), "sd": sd}
            if arm != "plain" and "plain" in values[seeds[0]] and name != "train_seconds":
                base = np.array([values[s]["plain"].get(name, np.nan) for s in seeds], dtype=float)
                figures[name]["minus_plain"] = round(float((series - base).mean()), 3)
        result[arm] = figures
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gans", nargs="+", default=list(REGISTRY))
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--dataset", default="dermamnist", help="MedMNIST flag (28 px)")
    parser.add_argument("--fraction", type=float, default=1.0, help="stratified share of the training split")
    parser.add_argument("--diffaugment", default="color,translation,cutout", help="the DiffAugment arms' policy")
    parser.add_argument("--ema", type=float, default=0.999, help="decay of the generator's moving average")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="override a GAN option")
    parser.add_argument("--per-class", type=int, default=200, help="synthetic images per class for the encoder")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS,
                        help="the arms to score (the DiffAugment training is skipped when neither of its arms is)")
    parser.add_argument("--inception", action="store_true", help="also Inception FID (slow on a CPU)")
    parser.add_argument("--inception-arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--inception-images", type=int, default=400, help="synthetic images for Inception FID")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/gan_quality"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}

    spec = DatasetSpec(name=args.dataset, size=28)
    data = load_dataset(spec)
    encoder = train_encoder(data.train, data.splits.get("val"))
    test = data.splits["test"]
    real_features = encoder.features(test.images)
    real_agreement = float((encoder.predict(test.images) == test.labels).mean())
    print(f"encoder: {encoder.name}; real test images agree with their labels: {real_agreement:.3f}", flush=True)
    if args.inception:
        from metrics.inception import inception_fid, reference_set
        started = time.perf_counter()
        real_inception = reference_set(test, spec)
        print(f"inception reference: {len(real_inception)} test images in {time.perf_counter() - started:.0f} s",
              flush=True)

    def score(gan, name: str, seed: int, with_inception: bool) -> dict:
        synthetic = synthesize(gan, args.per_class, data.train.class_names, seed=seed)
        figures = {"fid_encoder": round(fid(real_features, encoder.features(synthetic.images)), 2),
                   "class_agreement": round(float((encoder.predict(synthetic.images) == synthetic.labels).mean()), 3)}
        if with_inception:
            chosen = synthetic.images[interleaved(synthetic.labels, args.inception_images)]
            figures["fid_inception"] = round(inception_fid(real_inception, chosen)["fid"], 2)
        save_png(make_grid(class_grid(gan, seed=seed + GRID_SEED_OFFSET), ncol=8), args.out / f"{name}.png")
        return figures

    results = {}
    for gan_name in args.gans:
        per_seed = {}
        for seed in args.seeds:
            per_seed[seed] = {}
            for policy, arms in (("", ("plain", "ema")), (args.diffaugment, ("diffaugment", "diffaugment+ema"))):
                if not set(arms) & set(args.arms):
                    continue
                config = make_config(gan_name, args.preset, **{**overrides, "dataset": spec.to_dict(), "seed": seed,
                                                                "train_fraction": args.fraction,
                                                                "diffaugment": policy, "ema": args.ema})
                images = training_images(config)
                started = time.perf_counter()
                gan = train(config, images)
                seconds = round(time.perf_counter() - started, 1)
                for arm, model in zip(arms, (raw_weights(gan), gan)):
                    if arm not in args.arms:
                        continue
                    with_inception = args.inception and arm in args.inception_arms
                    figures = score(model, f"{args.dataset}_{gan_name}_seed{seed}_{arm}", seed, with_inception)
                    per_seed[seed][arm] = {**figures, "train_seconds": seconds}
                    print(f"{gan_name} seed {seed} {arm} ({len(images)} training images): {per_seed[seed][arm]}",
                          flush=True)
        results[gan_name] = {"seeds": per_seed, "summary": summary(per_seed)}
        print(f"{gan_name} summary: {json.dumps(results[gan_name]['summary'])}", flush=True)
    print(json.dumps({"dataset": args.dataset, "fraction": args.fraction, "preset": args.preset,
                      "diffaugment": args.diffaugment, "ema": args.ema, "overrides": overrides,
                      "encoder": encoder.name, "real_class_agreement": round(real_agreement, 3), **results}))


if __name__ == "__main__":
    main()
