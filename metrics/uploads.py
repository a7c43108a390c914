"""Synthetic sets that arrive as uploads: an npz (no pickles) or an image-folder zip.

An image-folder zip (`<class>/<image>`) is extracted with `data.zipsafe.extract_zip`, its
images decoded to the dataset's size and channels, and its class folders matched to the
dataset's class names (by name, or by index when folders are named 0, 1, …). Either way the
set is registered with `save_set` under `runs_dir()/uploads/<id>/artifacts`, where
`list_sets` and the score job find it.
"""
from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

import numpy as np

from data.datasets import DatasetSpec
from data.folder import decode, scan, to_channels
from data.imageset import ImageSet
from data.paths import runs_dir
from data.synthetic import load_set, save_set
from data.zipsafe import extract_zip


def register_upload(data: bytes, filename: str, spec: DatasetSpec, class_names: list[str], channels: int) -> Path:
    """Save an uploaded set as a synthetic set; returns its npz path. Errors name the file."""
    with tempfile.TemporaryDirectory() as tmp:
        if filename.lower().endswith(".npz"):
            path = Path(tmp) / "upload.npz"
            path.write_bytes(data)
            try:
                images = load_set(path)
            except ValueError as e:
                raise ValueError(f"{filename}: {e}") from None
        elif filename.lower().endswith(".zip"):
            images = _folder_zip(data, filename, spec.size, class_names, channels, Path(tmp))
        else:
            raise ValueError(f"{filename}: expected a .npz synthetic set or a .zip of class folders")
    if images.images.shape[1:] != (spec.size, spec.size, channels):
        raise ValueError(f"{filename}: images are {images.images.shape[1:]} (H×W×C) but {spec.label} has "
                         f"{(spec.size, spec.size, channels)}")
    if len(images.class_names) != len(class_names) or images.labels.max(initial=0) >= len(class_names):
        raise ValueError(f"{filename}: labels do not fit the {len(class_names)} classes of {spec.label}")
    upload_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    directory = runs_dir() / "uploads" / upload_id / "artifacts"
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(filename).stem)[:40] or "upload"
    return save_set(ImageSet(images.images, images.labels, list(class_names), "synthetic"), directory, stem,
                    generator="upload", display_name=f"upload/{stem}", dataset=spec.to_dict(), filename=filename)


def _folder_zip(data: bytes, filename: str, size: int, class_names: list[str], channels: int,
                tmp: Path) -> ImageSet:
    try:
        extract_zip(data, tmp / "zip")
        layout = scan(tmp / "zip")
    except ValueError as e:  # DatasetError / UnsafeZipError
        raise ValueError(f"{filename}: {e}") from None
    mapping = {}
    for k, name in enumerate(layout.class_names):
        if name in class_names:
            mapping[k] = class_names.index(name)
        elif name.isdigit() and int(name) < len(class_names):
            mapping[k] = int(name)
        else:
            raise ValueError(f"{filename}: folder '{name}' is not a class of this dataset "
                             f"({', '.join(class_names)}) nor a class index")
    images, labels = [], []
    for f in layout.files:
        try:
            images.append(to_channels(decode(layout.root / f.relpath, size), channels))
        except OSError as e:
            raise ValueError(f"{filename}: {f.relpath} is not a readable image ({e})") from None
        labels.append(mapping[f.label])
    return ImageSet(np.stack(images), np.array(labels), list(class_names), "synthetic")
