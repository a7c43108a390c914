"""The "singan" job: train a SinGAN on one image, or on k seed images per class of a dataset.

mode="image": one image (a file, or one image of a dataset's training split). Writes the
generator (`checkpoints/singan.pt`), a sample grid per level (`samples/stage_<k>.png`), the
variations (`artifacts/variations.npz` and `.png`) and `artifacts/summary.json`.

mode="seeds": picks k training images per class (at random with `seed`, or `seed_indices` by
hand), queues one image-mode run per seed (each with its own events, checkpoints and cancel;
free worker slots train them side by side, the seeds run trains the rest itself), collects
`variations` images from each, and registers them as a labelled synthetic set at the dataset's
working size and channels (`artifacts/singan_variations.npz` + `.json` + image-folder `.zip`),
ready for the study's "a fraction of the real data plus SinGAN variations" arm.

`load_variations(run)` reads either kind of finished run back.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from data.datasets import load_dataset
from data.files import atomic_save, atomic_write_bytes, atomic_write_json, read_json
from data.grid import make_grid, save_png
from data.imageset import ImageSet, from_tensor, to_tensor
from data.provenance import Provenance, fingerprints
from data.synthetic import load_set, save_set, to_folder_zip
from gans.singan import load_image, resize
from gans.singan_train import SinGanConfig, build_model, train
from lab.children import create_children, run_children
from lab.runs import Run


def run(run: Run) -> None:
    config = SinGanConfig.from_dict(run.settings)
    torch.manual_seed(config.seed)
    if config.mode == "image":
        train_image(run, config)
    else:
        train_seeds(run, config)


# --- one image ----------------------------------------------------------------------------------

def train_image(run: Run, config: SinGanConfig) -> None:
    image, label = source_image(config)
    model = build_model(image, config)
    seconds = train(model, run.hooks(), checkpoint_every=config.checkpoint_every, log_every=config.log_every)
    model.save(run.checkpoints / "singan.pt", training_state=False)
    variations = from_tensor(model.sample(config.variations, seed=config.seed, inject_stage=config.inject_stage,
                                          noise_scale=config.noise_scale))
    atomic_save(run.artifacts / "variations.npz",
                lambda tmp: np.savez_compressed(tmp, images=variations, label=np.array(label)))
    real = from_tensor(model.reals[-1].cpu())
    save_png(make_grid(np.concatenate([real, variations]), ncol=4, marked=[0]), run.artifacts / "variations.png")
    atomic_write_json(run.artifacts / "summary.json", {
        "label": label, "train_seconds": round(seconds, 1), "sizes": model.sizes, "noise_amps": model.amps,
        "reconstruction_rmse": model.reconstruction_error(), "variations": len(variations)})


def source_image(config: SinGanConfig) -> tuple[np.ndarray, str]:
    """The training image (uint8 H×W×C) and a label for it: the file name or the image's class."""
    if config.image_path:
        return load_image(config.image_path), Path(config.image_path).stem
    train_split = load_dataset(config.dataset).train
    if not 0 <= config.image_index < len(train_split):
        raise ValueError(f"image_index {config.image_index} is outside the training split (0..{len(train_split) - 1})")
    return train_split.images[config.image_index], train_split.class_names[train_split.labels[config.image_index]]


# --- seeds per class ----------------------------------------------------------------------------

def train_seeds(run: Run, config: SinGanConfig) -> None:
    """Queue one image-mode "singan" run per seed (lab/children.py), then collect their variations."""
    spec = config.dataset
    train_split = load_dataset(spec).train
    seeds = list(config.seed_indices) or choose_seeds(train_split, config.seeds_per_class, config.seed)
    bad = [i for i in seeds if not 0 <= i < len(train_split)]
    if bad:
        raise ValueError(f"seed indices outside the training split (0..{len(train_split) - 1}): {bad}")
    atomic_write_json(run.artifacts / "seeds.json", {"indices": seeds,
                                                     "labels": train_split.labels[seeds].tolist()})
    plan = {f"seed{position:03d}": (f"{spec.name}-seed{position:03d}", seed_config(config, index, position))
            for position, index in enumerate(seeds)}
    children = create_children(run, "singan", plan)
    run_children(run, children, config.model.total_steps,
                 describe=lambda key: f"seed {int(key[4:]) + 1}/{len(seeds)}")

    variations = [read_child_variations(child, spec.size, train_split.channels) for child in children.values()]
    labels = np.concatenate([np.full(len(v), train_split.labels[index]) for v, index in zip(variations, seeds)])
    synthetic = ImageSet(np.concatenate(variations), labels, train_split.class_names,
                         split="synthetic", source=f"singan@{spec.name}")
    train_seconds = sum(read_json(c.artifacts / "summary.json", {}).get("train_seconds", 0) for c in children.values())
    trained_on = fingerprints(train_split.images[seeds])
    provenance = Provenance.trained(trained_on, dataset=spec, split="train", train_fraction=1.0,
                                    subset_seed=config.seed, generator="singan", run_id=run.id,
                                    config=config.to_dict())
    save_set(synthetic, run.artifacts, "singan_variations", provenance, trained_on, generator="singan", run_id=run.id,
             dataset=spec.to_dict(), train_seconds=round(train_seconds, 1), seeds=seeds,
             seed_runs=[c.id for c in children.values()], variations_per_seed=config.variations,
             preset=config.preset)
    atomic_write_bytes(run.artifacts / "singan_variations.zip", to_folder_zip(synthetic))
    reals = train_split.images[seeds]
    rows = [np.concatenate([reals[i:i + 1], v[:7]]) for i, v in enumerate(variations)]
    ncol = 1 + min(7, config.variations)
    save_png(make_grid(np.concatenate(rows), ncol=ncol, marked=range(0, len(rows) * ncol, ncol)),  # the real seeds
             run.samples / "seeds.png")
    run.log_event(type="synthetic_set", path=str(run.artifacts / "singan_variations.npz"), count=len(synthetic))


def choose_seeds(train_split: ImageSet, per_class: int, seed: int) -> list[int]:
    """`per_class` random training indices of every class (fewer if a class is smaller)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(train_split.num_classes):
        members = np.flatnonzero(train_split.labels == label)
        chosen += sorted(rng.choice(members, size=min(per_class, len(members)), replace=False).tolist())
    return chosen


def seed_config(config: SinGanConfig, index: int, position: int) -> dict:
    """The image-mode config of one seed's run: the seeds run's settings, a seed of its own."""
    return config.replace(mode="image", image_index=int(index), seed=config.seed + position, seed_indices=[],
                          seeds_per_class=0).to_dict()


def read_child_variations(child: Run, size: int, channels: int) -> np.ndarray:
    with np.load(child.artifacts / "variations.npz", allow_pickle=False) as f:
        images = f["images"]
    return to_working_size(to_tensor(images), size, channels)


def to_working_size(images: torch.Tensor, size: int, channels: int) -> np.ndarray:
    """Generated images resized to the dataset's square working size and channel count, as uint8."""
    images = resize(images, (size, size)).clamp(-1, 1)
    if images.shape[1] != channels:
        images = images.mean(1, keepdim=True) if channels == 1 else images.expand(-1, channels, -1, -1)
    return from_tensor(images)


# --- reading results ----------------------------------------------------------------------------

def load_variations(run: Run) -> ImageSet:
    """A finished run's variations as an ImageSet: the synthetic set (seeds mode) or variations.npz."""
    if run.config.get("mode") == "seeds":
        return load_set(run.artifacts / "singan_variations.npz")
    with np.load(run.artifacts / "variations.npz", allow_pickle=False) as f:
        images, label = f["images"], str(f["label"])
    return ImageSet(images, np.zeros(len(images), np.int64), [label], split="synthetic", source="singan")
