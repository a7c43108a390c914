"""What every single-image job (SinGAN, GPNN) is asked: one image, or k seed images per class of a
dataset, and how many variations of each. The generators' own settings live in their configs."""
from __future__ import annotations

from dataclasses import dataclass

from data.config import (MAX_IMAGES_PER_CLASS, MAX_INDEX, MAX_SEED_IMAGES, MAX_SEEDS_PER_CLASS, MAX_VARIATIONS,
                         Config, ConfigError, option)
from data.datasets import DatasetSpec

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
