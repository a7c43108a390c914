"""The in-memory dataset every part of the lab consumes.

An `ImageSet` is a split of a dataset held as arrays: uint8 images N×H×W×C, int labels,
the class names and the split's name. Sources (MedMNIST, folders, zips) produce them once;
GANs, metrics and the classifier read them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImageSet:
    images: np.ndarray  # uint8, N×H×W×C
    labels: np.ndarray  # int64, N
    class_names: list[str]
    split: str = "train"
    source: str = ""  # human-readable origin, e.g. "dermamnist@28"
    names: list[str] = field(default_factory=list)  # optional per-image file names

    def __post_init__(self):
        if self.images.ndim == 3:
            self.images = self.images[..., None]
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(
                f"ImageSet images must be uint8 N×H×W×C, got {self.images.dtype} {self.images.shape}"
            )
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> int:
        return self.images.shape[1]

    @property
    def channels(self) -> int:
        return self.images.shape[3]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def take(self, index) -> "ImageSet":
        index = np.asarray(index)
        names = [self.names[i] for i in index] if self.names else []
        return ImageSet(self.images[index], self.labels[index], list(self.class_names),
                        self.split, self.source, names)

    def of_class(self, label: int) -> "ImageSet":
        return self.take(np.flatnonzero(self.labels == label))

    def stratified_indices(self, fraction: float, seed: int = 0) -> np.ndarray:
        """Sorted indices of `fraction` of each class (at least one image per non-empty class), drawn with `seed`."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if fraction == 1:
            return np.arange(len(self))
        rng = np.random.default_rng(seed)
        keep = []
        for label in range(self.num_classes):
            idx = np.flatnonzero(self.labels == label)
            if len(idx) == 0:
                continue
            n = max(1, int(round(fraction * len(idx))))
            keep.append(rng.choice(idx, size=n, replace=False))
        return np.sort(np.concatenate(keep))

    def stratified_subset(self, fraction: float, seed: int = 0) -> "ImageSet":
        """Keep `fraction` of each class (at least one image per non-empty class)."""
        if fraction == 1:
            return self
        return self.take(self.stratified_indices(fraction, seed))

    def to_tensor(self):
        """Float tensor N×C×H×W in [-1, 1] (the GAN convention)."""
        return to_tensor(self.images)


def to_tensor(images):
    """uint8 N×H×W×C (array, or tensor on any device) -> float tensor N×C×H×W in [-1, 1], same device."""
    return _channels_first_float(images).div_(127.5).sub_(1.0)


def to_unit_tensor(images):
    """uint8 N×H×W×C (array, or tensor on any device) -> float tensor N×C×H×W in [0, 1], same device."""
    return _channels_first_float(images).div_(255.0)


def _channels_first_float(images):
    import torch

    if not isinstance(images, torch.Tensor):
        images = torch.from_numpy(np.ascontiguousarray(images))
    return images.permute(0, 3, 1, 2).float()


def from_tensor(x) -> np.ndarray:
    """Inverse of `ImageSet.to_tensor`: N×C×H×W in [-1, 1] -> uint8 N×H×W×C."""
    import torch

    x = (x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
