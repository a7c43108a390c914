"""Images out of a trained GAN: labelled synthetic sets and latent interpolations."""
from __future__ import annotations

import io

import numpy as np
import torch

from data.config import check_images_bytes
from data.hooks import NO_HOOKS, Hooks
from data.imageset import ImageSet, from_tensor

UNLABELLED = "unlabelled"


def has_labels(gan) -> bool:
    """Conditional and per-class GANs draw images of a chosen class; a whole-dataset GAN does not."""
    return gan.conditional or gan.per_class


def synthesize(gan, per_class: int, class_names: list[str], seed: int = 0, source: str = "",
               hooks: Hooks = NO_HOOKS) -> ImageSet:
    """`per_class` images of every class (or `per_class` unlabelled images) as an ImageSet.

    Images are drawn a batch at a time and kept as uint8 only, so a large set never sits in
    memory as floats; `hooks` hears the count drawn after each batch and may stop the draw
    (Interrupted).
    """
    classes = gan.num_classes if has_labels(gan) else 1
    check_images_bytes(f"per_class {per_class} × {classes} classes", per_class * classes, gan.image_size,
                       gan.image_size, gan.channels, "draw fewer images per class")
    if has_labels(gan):
        labels = np.repeat(np.arange(gan.num_classes), per_class)
        names = list(class_names)
    else:
        labels, names = np.zeros(per_class, dtype=np.int64), [UNLABELLED]
    images = np.empty((len(labels), gan.image_size, gan.image_size, gan.channels), dtype=np.uint8)
    done = 0
    for batch in gan.sample_batches(len(labels), labels, seed=seed):
        images[done:done + len(batch)] = from_tensor(batch)
        done += len(batch)
        hooks.progress(done, len(labels), "drawing images")
        hooks.stop_if_asked()
    return ImageSet(images, labels, names, split="synthetic", source=source)


def class_grid(gan, per_row: int = 8, seed: int = 0) -> np.ndarray:
    """uint8 images for a grid: one row per class (or 8 rows of a whole-dataset GAN)."""
    rows = gan.num_classes if has_labels(gan) else 8
    labels = np.repeat(np.arange(rows), per_row) if has_labels(gan) else np.zeros(rows * per_row, dtype=np.int64)
    return from_tensor(gan.sample(len(labels), labels, seed=seed))


def interpolate(gan, label: int = 0, steps: int = 10, seed: int = 0) -> np.ndarray:
    """uint8 images along the straight line between two latent points, for one class."""
    generator = torch.Generator(device=gan.device).manual_seed(int(seed))
    ends = gan.noise(2, generator)
    t = torch.linspace(0, 1, steps, device=gan.device)[:, None]
    z = (1 - t) * ends[0] + t * ends[1]
    labels = torch.full((steps,), int(label), dtype=torch.long, device=gan.device)
    return from_tensor(gan.decode(z, labels))


def npz_bytes(images: ImageSet) -> bytes:
    """The set as an npz file's bytes (the synthetic-set layout: images, labels, class_names)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images.images, labels=images.labels, class_names=np.array(images.class_names))
    return buffer.getvalue()
