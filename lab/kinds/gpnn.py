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
"""
from __future__ import annotations

import time

import numpy as np
import torch

from data.datasets import load_dataset
from data.device import resolve_device
from data.files import atomic_write_json
from data.hooks import Hooks
from data.imageset import from_tensor, to_tensor
from gans.gpnn import GpnnConfig, generate, resize
from lab.kinds.singan import (image_figures, save_image_variations, save_seeds_set, seed_images, source_image,
                              to_working_size)
from lab.engine.runs import Run


CONFIG = GpnnConfig


def run(run: Run) -> None:
    config = GpnnConfig.from_dict(run.settings)
    if config.mode == "image":
        generate_image(run, config)
    else:
        generate_seeds(run, config)


def variations_of(image: np.ndarray, config: GpnnConfig, seed: int, hooks: Hooks) -> torch.Tensor:
    """`config.variations` GPNN variations of a uint8 H×W×C image: N×C×h×w in [-1, 1], on the CPU."""
    source = to_tensor(image[None])[0].to(resolve_device(config.device))
    return generate(source, config.variations, config.model, seed=seed, hooks=hooks).cpu()


def generate_image(run: Run, config: GpnnConfig) -> None:
    image, label, same_class = source_image(config)
    started = time.perf_counter()
    variations = from_tensor(variations_of(image, config, config.seed, run.hooks()))
    seconds = time.perf_counter() - started
    real = from_tensor(resize(to_tensor(image[None]), variations.shape[1:3]).clamp(-1, 1))[0]  # GPNN's finest source
    save_image_variations(run, real, variations, label)
    atomic_write_json(run.artifacts / "summary.json", {
        "label": label, "seconds": round(seconds, 2), "size": list(variations.shape[1:3]),
        "variations": len(variations), **image_figures(real, variations, same_class, config.sifid, config.device)})


def generate_seeds(run: Run, config: GpnnConfig) -> None:
    spec = config.dataset
    train_split = load_dataset(spec).train
    seeds = seed_images(run, config, train_split)
    hooks = run.hooks()
    started = time.perf_counter()
    variations = []
    for position, index in enumerate(seeds):
        images = variations_of(train_split.images[index], config, config.seed + position,
                               seed_hooks(hooks, position, len(seeds)))
        variations.append(to_working_size(images, spec.size, train_split.channels))
    save_seeds_set(run, "gpnn", config, train_split, seeds, variations,
                   seconds=round(time.perf_counter() - started, 1))


def seed_hooks(hooks: Hooks, position: int, count: int) -> Hooks:
    """The run's hooks for the seed at `position` of `count`: its pyramid levels are a share of the run's progress."""
    def progress(done: int, total: int, message: str = "", **metrics) -> None:
        hooks.progress(position * total + done, count * total, f"seed {position + 1}/{count}: {message}", **metrics)

    return Hooks(progress=progress, event=hooks.event, should_stop=hooks.should_stop)
