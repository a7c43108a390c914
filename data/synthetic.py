"""Synthetic image sets: what generators export and what the quality and study pages pick.

A synthetic set is `<name>.npz` (arrays `images` uint8 N×H×W×C, `labels`, `class_names`) with
a sidecar `<name>.json` of metadata (generator, source run, dataset spec, image size, channels,
class counts, training seconds). `incompatibility` says whether a set fits a dataset; finding
the sets in run directories is the lab's business (`lab.sets`).
"""
from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from data.datasets import DatasetSpec
from data.files import atomic_save, atomic_write_json, read_json
from data.imageset import ImageSet


def save_set(images: ImageSet, directory: Path, name: str = "synthetic", **meta) -> Path:
    """Write an ImageSet as a synthetic set in `directory` (usually a run's artifacts/)."""
    directory = Path(directory)
    path = atomic_save(directory / f"{name}.npz", lambda tmp: np.savez_compressed(
        tmp, images=images.images, labels=images.labels, class_names=np.array(images.class_names)))
    meta = {"name": meta.pop("display_name", "") or f"{directory.parent.name}/{name}",
            "count": len(images), "size": images.size, "channels": images.channels,
            "class_counts": images.class_counts().tolist(), "created": time.time(), **meta}
    atomic_write_json(path.with_suffix(".json"), meta)
    return path


def load_set(path: str | Path) -> ImageSet:
    """Read a synthetic set npz (no pickles: uploaded files are untrusted)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels = f["images"], f["labels"]
            names = [str(n) for n in f["class_names"]] if "class_names" in f else \
                [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0)]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path.name} is not a synthetic set npz with 'images' and 'labels': {e}") from None
    if images.dtype != np.uint8:
        if images.min() < 0 or images.max() > 255:
            raise ValueError(f"{path.name}: images must be uint8 (0-255); got {images.dtype}")
        images = images.astype(np.uint8)
    return ImageSet(images, labels, names, split="synthetic", source=path.stem)


def read_meta(path: str | Path) -> dict:
    """The sidecar metadata of a set's npz; {} when it is missing or unreadable."""
    meta = read_json(Path(path).with_suffix(".json"), default={})
    return meta if isinstance(meta, dict) else {}


def incompatibility(meta: dict, spec: DatasetSpec, channels: int, num_classes: int) -> str | None:
    """Why a set (its sidecar metadata) cannot stand beside a dataset's real images, or None if it can.

    A set fits when it was made from the dataset of that name (sets that do not record theirs are
    given the benefit of the doubt), its images have the dataset's size and `channels`, and its
    labels use at most the dataset's `num_classes` classes.
    """
    dataset = meta.get("dataset")
    made_from = dataset.get("name") if isinstance(dataset, dict) else None
    if made_from is not None and made_from != spec.name:
        return f"made from {made_from}, not {spec.name}"
    size = meta.get("size")
    if size is not None and size != spec.size:
        return f"{size}px images, not {spec.size}px"
    set_channels = meta.get("channels")
    if set_channels is not None and set_channels != channels:
        return f"{set_channels} channels, not {channels}"
    classes = len(meta.get("class_counts") or [])
    if classes > num_classes:
        return f"{classes} classes, more than the dataset's {num_classes}"
    return None


def to_folder_zip(images: ImageSet) -> bytes:
    """The set as an image-folder zip: `<class>/<index>.png`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, (image, label) in enumerate(zip(images.images, images.labels)):
            png = io.BytesIO()
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(png, format="PNG")
            zf.writestr(f"{_safe(images.class_names[label])}/{i:06d}.png", png.getvalue())
    return buffer.getvalue()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:48] or "class"
