"""What every single-image job (SinGAN, GPNN) is asked, and what they share.

`SingleImageJob`: one image, or k seed images per class of a dataset, and how many variations of
each (the generators' own settings live in their configs). Then the pieces both generators use: the
source image of an image-mode job (`source_image`), the seed images of a seeds-mode job
(`choose_seeds`), variations brought to the dataset's working size (`to_working_size`), and the files
they write: an image's variations (`save_variations`) and the labelled synthetic set of a seeds job,
whose provenance is its seed images (`write_seeds_set`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data.config import (MAX_IMAGES_PER_CLASS, MAX_INDEX, MAX_SEED_IMAGES, MAX_SEEDS_PER_CLASS, MAX_VARIATIONS,
                         Config, ConfigError, option)
from data.datasets import DatasetSpec, load_dataset
from data.files import atomic_save, atomic_write_bytes, atomic_write_json
from data.grid import make_grid, save_png
from data.imageset import ImageSet, from_tensor
from data.provenance import Provenance, fingerprints
from data.synthetic import load_set, save_set, to_folder_zip
from gans.singan import load_image, resize

MODES = ("image", "seeds")


@dataclass(frozen=True)
class SingleImageJob(Config):
    """One image → variations ("image"), or k seed images per class → a labelled set ("seeds")."""

    mode: str = option("image", label="Mode", choices=MODES,
                       help="image: one image → variations; seeds: k training images per class → a labelled "
                            "synthetic set")
    image_path: str = option("", label="Image file", help="image mode: an image file (PNG, JPEG, ...)")
    dataset: DatasetSpec | None = None  # seeds mode, or image mode with image_index
    image_index: int = option(-1, label="Image index", min=-1, max=MAX_INDEX,
                              help="image mode: index into the dataset's training split")
    seeds_per_class: int = option(2, label="Seeds per class", min=0, max=MAX_SEEDS_PER_CLASS,
                                  help="seeds mode: k training images per class, drawn with seed")
    seed_indices: list[int] = option(factory=list, label="Seed indices",
                                     help="seeds mode: hand-picked training indices (instead of seeds_per_class)")
    variations: int = option(8, label="Variations", min=1, max=MAX_VARIATIONS,
                             help="images generated per image (per seed image)")

    def validate(self) -> None:
        name = type(self).__name__
        if self.mode == "image" and not self.image_path and (self.dataset is None or self.image_index < 0):
            raise ConfigError(f"{name}: image mode needs image_path, or dataset and image_index")
        if self.mode == "seeds" and self.dataset is None:
            raise ConfigError(f"{name}.dataset: seeds mode needs a dataset")
        if self.mode == "seeds" and not (self.seeds_per_class or self.seed_indices):
            raise ConfigError(f"{name}: seeds mode needs seeds_per_class of at least 1, or seed_indices")
        if any(index < 0 for index in self.seed_indices):
            raise ConfigError(f"{name}.seed_indices must not be negative; got {self.seed_indices}")
        if len(self.seed_indices) > MAX_SEED_IMAGES:
            raise ConfigError(f"{name}.seed_indices: {len(self.seed_indices)} seed images; at most {MAX_SEED_IMAGES}")
        per_class = self.seeds_per_class * self.variations
        if self.mode == "seeds" and not self.seed_indices and per_class > MAX_IMAGES_PER_CLASS:
            raise ConfigError(f"{name}: seeds_per_class × variations = {per_class} images per class; at most "
                              f"{MAX_IMAGES_PER_CLASS}")


def source_image(job: SingleImageJob) -> tuple[np.ndarray, str, np.ndarray | None]:
    """The image of an image-mode job (uint8 H×W×C), a label for it (the file name or the image's class)
    and, for a dataset image, the training images of its class (else None)."""
    if job.image_path:
        return load_image(job.image_path), Path(job.image_path).stem, None
    train_split = load_dataset(job.dataset).train
    if not 0 <= job.image_index < len(train_split):
        raise ValueError(f"image_index {job.image_index} is outside the training split (0..{len(train_split) - 1})")
    label = train_split.labels[job.image_index]
    return train_split.images[job.image_index], train_split.class_names[label], train_split.of_class(label).images


def seed_indices(job: SingleImageJob, train_split: ImageSet, seed: int) -> list[int]:
    """A seeds-mode job's training indices: its `seed_indices`, checked, else `choose_seeds` with `seed`."""
    seeds = list(job.seed_indices) or choose_seeds(train_split, job.seeds_per_class, seed)
    bad = [i for i in seeds if not 0 <= i < len(train_split)]
    if bad:
        raise ValueError(f"seed indices outside the training split (0..{len(train_split) - 1}): {bad}")
    return seeds


def choose_seeds(train_split: ImageSet, per_class: int, seed: int) -> list[int]:
    """`per_class` random training indices of every class (fewer if a class is smaller)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(train_split.num_classes):
        members = np.flatnonzero(train_split.labels == label)
        chosen += sorted(rng.choice(members, size=min(per_class, len(members)), replace=False).tolist())
    return chosen


def to_working_size(images: torch.Tensor, size: int, channels: int) -> np.ndarray:
    """Generated images (N×C×h×w in [-1, 1]) resized to the dataset's square working size and channel
    count, as uint8 N×size×size×channels."""
    images = resize(images, (size, size)).clamp(-1, 1)
    if images.shape[1] != channels:
        images = images.mean(1, keepdim=True) if channels == 1 else images.expand(-1, channels, -1, -1)
    return from_tensor(images)


VARIATIONS = "variations.npz"  # an image-mode run's variations, beside variations.png


def save_variations(folder: Path, real: np.ndarray, variations: np.ndarray, label: str) -> None:
    """`variations.npz` (images, label) and `variations.png` (the real image framed, then the variations)."""
    atomic_save(folder / VARIATIONS, lambda tmp: np.savez_compressed(tmp, images=variations, label=np.array(label)))
    save_png(make_grid(np.concatenate([real[None], variations]), ncol=4, marked=[0]), folder / "variations.png")


def read_variations(folder: Path) -> tuple[np.ndarray, str]:
    """The images and label `save_variations` wrote into `folder`."""
    with np.load(folder / VARIATIONS, allow_pickle=False) as f:
        return f["images"], str(f["label"])


def load_variations(folder: Path, generator: str, mode: str) -> ImageSet:
    """A finished single-image run's variations from its artifacts `folder`: the labelled set of a seeds
    run (`write_seeds_set`), or an image run's variations as one class named by their label."""
    if mode == "seeds":
        return load_set(folder / f"{generator}_variations.npz")
    images, label = read_variations(folder)
    return ImageSet(images, np.zeros(len(images), np.int64), [label], split="synthetic", source=generator)


def write_seeds_set(artifacts: Path, samples: Path, generator: str, job: SingleImageJob, preset: str, seed: int,
                    config: dict, run_id: str, train_split: ImageSet, seeds: list[int], variations: list[np.ndarray],
                    summary: dict) -> Path:
    """Register a seeds job's variations (one uint8 array at the working size per seed) as the labelled
    synthetic set `<generator>_variations` in `artifacts` (.npz + .json + image-folder .zip), whose
    provenance is the seed images; draw `samples/seeds.png` (each seed framed, then its variations) and
    write `artifacts/summary.json` (`summary` with the counts). Returns the set's npz."""
    spec: DatasetSpec = job.dataset
    name = f"{generator}_variations"
    labels = np.concatenate([np.full(len(v), train_split.labels[index]) for v, index in zip(variations, seeds)])
    synthetic = ImageSet(np.concatenate(variations), labels, train_split.class_names,
                         split="synthetic", source=f"{generator}@{spec.name}")
    trained_on = fingerprints(train_split.images[seeds])
    provenance = Provenance.trained(trained_on, dataset=spec, split="train", train_fraction=1.0, subset_seed=seed,
                                    generator=generator, run_id=run_id, config=config)
    meta = {key: value for key, value in summary.items() if not key.startswith("diversity")}
    path = save_set(synthetic, artifacts, name, provenance, trained_on, generator=generator, run_id=run_id,
                    dataset=spec.to_dict(), seeds=seeds, variations_per_seed=job.variations, preset=preset, **meta)
    atomic_write_bytes(artifacts / f"{name}.zip", to_folder_zip(synthetic))
    rows = [np.concatenate([train_split.images[index][None], v[:7]]) for index, v in zip(seeds, variations)]
    ncol = 1 + min(7, job.variations)
    save_png(make_grid(np.concatenate(rows), ncol=ncol, marked=range(0, len(rows) * ncol, ncol)),  # the real seeds
             samples / "seeds.png")
    atomic_write_json(artifacts / "summary.json", {"seeds": len(seeds), "variations": len(synthetic), **summary})
    return path
