"""Synthetic image sets: what generators export and what the quality and study pages pick.

A synthetic set is `artifacts/<name>.npz` (arrays `images` uint8 N×H×W×C, `labels`,
`class_names`) with a sidecar `<name>.json` of metadata (generator, source run, dataset spec,
training seconds). Any run directory may hold them; `list_sets` finds them all.
"""
from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from data.imageset import ImageSet
from data.paths import runs_dir
from lab.runs import atomic_write_json


@dataclass
class SyntheticSetInfo:
    path: Path  # the .npz
    meta: dict

    @property
    def name(self) -> str:
        return self.meta.get("name") or f"{self.path.parent.parent.name}/{self.path.stem}"

    @property
    def label(self) -> str:
        gen = self.meta.get("generator", "?")
        return f"{gen} · {self.meta.get('count', '?')} images · {self.name}"


def save_set(images: ImageSet, directory: Path, name: str = "synthetic", **meta) -> Path:
    """Write an ImageSet as a synthetic set in `directory` (usually a run's artifacts/)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.npz"
    tmp = directory / f".{name}.tmp.npz"
    np.savez_compressed(tmp, images=images.images, labels=images.labels,
                        class_names=np.array(images.class_names))
    tmp.replace(path)
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
    meta_path = Path(path).with_suffix(".json")
    try:
        return json.loads(meta_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def list_sets(root: Path | None = None) -> list[SyntheticSetInfo]:
    """Every synthetic set under the runs directory, newest first."""
    root = Path(root or runs_dir())
    paths = sorted(root.glob("*/*/artifacts/*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [SyntheticSetInfo(p, read_meta(p)) for p in paths if p.with_suffix(".json").exists()]


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
