"""The "singan" job: train a SinGAN on one image, or on k seed images per class of a dataset.

mode="image": one image (a file, or one image of a dataset's training split). Writes the
generator (`checkpoints/singan.pt`), a sample grid per level (`samples/stage_<k>.png`), the
variations (`artifacts/variations.npz` and `.png`) and `artifacts/summary.json` (with how much
the variations vary and, unless `sifid` is off, their SIFID: `metrics.diversity.image_figures`).

mode="seeds": picks k training images per class (at random with `seed`, or `seed_indices` by
hand), queues one image-mode run per seed (each with its own events, checkpoints and cancel;
free worker slots train them side by side, the seeds run trains the rest itself), collects
`variations` images from each, and registers them as a labelled synthetic set at the dataset's
working size and channels (`artifacts/singan_variations.npz` + `.json` + image-folder `.zip`),
ready for the study's "a fraction of the real data plus SinGAN variations" arm.
"""
from __future__ import annotations

import torch

from data.datasets import load_dataset
from data.files import atomic_write_json, read_json
from data.imageset import from_tensor, to_tensor
from gans.singan_train import SinGanConfig, build_model, train
from gans.single_image import (read_variations, save_variations, seed_indices, source_image, to_working_size,
                               write_seeds_set)
from lab.engine.children import create_children, run_children
from lab.engine.runs import Run
from lab.provenance_check import keep_seed_images
from metrics.diversity import image_figures, seeds_figures

CONFIG = SinGanConfig


def run(run: Run) -> None:
    config = SinGanConfig.from_dict(run.settings)
    torch.manual_seed(config.seed)
    if config.mode == "image":
        train_image(run, config)
    else:
        train_seeds(run, config)


def train_image(run: Run, config: SinGanConfig) -> None:
    image, label, same_class = source_image(config)
    model = build_model(image, config)
    seconds = train(model, run.hooks(), checkpoint_every=config.checkpoint_every, log_every=config.log_every)
    model.save(run.checkpoints / "singan.pt", training_state=False)
    variations = from_tensor(model.sample(config.variations, seed=config.seed, inject_stage=config.inject_stage,
                                          noise_scale=config.noise_scale))
    real = from_tensor(model.reals[-1].cpu())[0]
    save_variations(run.artifacts, real, variations, label)
    atomic_write_json(run.artifacts / "summary.json", {
        "label": label, "train_seconds": round(seconds, 1), "sizes": model.sizes, "noise_amps": model.amps,
        "reconstruction_rmse": model.reconstruction_error(), "variations": len(variations),
        **image_figures(real, variations, same_class, config.sifid, config.device)})


def train_seeds(run: Run, config: SinGanConfig) -> None:
    """Queue one image-mode "singan" run per seed (lab/engine/children.py), then collect their variations."""
    spec = config.dataset
    train_split = load_dataset(spec).train
    seeds = seed_indices(config, train_split, config.seed)
    keep_seed_images(run, train_split, seeds)
    plan = {f"seed{position:03d}": (f"{spec.name}-seed{position:03d}", seed_config(config, index, position))
            for position, index in enumerate(seeds)}
    children = create_children(run, "singan", plan)
    run_children(run, children, config.model.total_steps,
                 describe=lambda key: f"seed {int(key[4:]) + 1}/{len(seeds)}")
    variations = [to_working_size(to_tensor(read_variations(child.artifacts)[0]), spec.size, train_split.channels)
                  for child in children.values()]
    train_seconds = sum(read_json(c.artifacts / "summary.json", {}).get("train_seconds", 0) for c in children.values())
    write_seeds_set(run.artifacts, run.samples, "singan", config, config.preset, config.seed, config.to_dict(), run.id,
                    train_split, seeds, variations,
                    {"train_seconds": round(train_seconds, 1), "seed_runs": [c.id for c in children.values()],
                     **seeds_figures(train_split, seeds, variations)})
    run.log_event(type="synthetic_set", path=str(run.artifacts / "singan_variations.npz"),
                  count=sum(map(len, variations)))


def seed_config(config: SinGanConfig, index: int, position: int) -> dict:
    """The image-mode config of one seed's run: the seeds run's settings, a seed of its own, no SIFID
    (the seeds run reports the diversity of all its seeds instead)."""
    return config.replace(mode="image", image_index=int(index), seed=config.seed + position, seed_indices=[],
                          seeds_per_class=0, sifid=False).to_dict()
