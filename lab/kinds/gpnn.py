"""The "gpnn" job: GPNN variations of one image, or of k seed images per class of a dataset.

GPNN (gans/gpnn.py) learns nothing: every output is made of the image's own patches, so a run
takes seconds and keeps no checkpoint (a cancelled run is simply run again).

mode="image": one image (a file, or one image of a dataset's training split). Writes the
variations (`artifacts/variations.npz` and `.png`, as a SinGAN image run does) and
`artifacts/summary.json` (seconds, diversity and, unless `sifid` is off, SIFID).

mode="seeds": the same seeds as SinGAN's (k training images per class drawn with `seed`, or
`seed_indices`), `variations` images each, made one seed after another in this process (no
child runs), registered as the labelled synthetic set `gpnn_variations` whose provenance is the
seed images, exactly like SinGAN's seeds set.

Like every kind, its events reach TensorBoard: each pyramid level's seconds (progress), the figures
of summary.json (an image run's "summary" event) and the variations' grid (a "sample" event).
"""
from __future__ import annotations

import time

from data.datasets import load_dataset
from data.files import atomic_write_json
from data.imageset import from_tensor, to_tensor
from gans.gpnn import GpnnConfig, resize, seed_variations, variations_of
from gans.single_image import save_variations, seed_indices, source_image, write_seeds_set
from lab.engine.runs import Run
from lab.provenance_check import keep_seed_images
from metrics.diversity import image_figures, seeds_figures

CONFIG = GpnnConfig


def run(run: Run) -> None:
    config = GpnnConfig.from_dict(run.settings)
    started = time.perf_counter()
    if config.mode == "image":
        image, label, same_class = source_image(config)
        variations = from_tensor(variations_of(image, config, config.seed, run.hooks()))
        seconds = round(time.perf_counter() - started, 2)
        # the image at GPNN's finest level, beside its variations
        real = from_tensor(resize(to_tensor(image[None]), variations.shape[1:3]).clamp(-1, 1))[0]
        save_variations(run.artifacts, real, variations, label)
        figures = image_figures(real, variations, same_class, config.sifid, config.device)
        atomic_write_json(run.artifacts / "summary.json", {
            "label": label, "seconds": seconds, "size": list(variations.shape[1:3]), "variations": len(variations),
            **figures})
        run.log_event(type="summary", step=len(variations), seconds=seconds, sifid=figures.get("sifid"),
                      **{f"diversity_{name}": value for name, value in figures["diversity"].items()})
        run.log_event(type="sample", step=len(variations), path=str(run.artifacts / "variations.png"))
        return
    train_split = load_dataset(config.dataset).train
    seeds = seed_indices(config, train_split, config.seed)
    keep_seed_images(run, train_split, seeds)
    variations = seed_variations(train_split, seeds, config, config.dataset.size, run.hooks())
    write_seeds_set(run.artifacts, run.samples, "gpnn", config, config.preset, config.seed, config.to_dict(), run.id,
                    train_split, seeds, variations, {"seconds": round(time.perf_counter() - started, 1),
                                                     **seeds_figures(train_split, seeds, variations)})
    run.log_event(type="synthetic_set", path=str(run.artifacts / "gpnn_variations.npz"),
                  count=sum(map(len, variations)))
    run.log_event(type="sample", step=len(seeds), path="seeds.png")
