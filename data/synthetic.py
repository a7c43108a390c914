"""Synthetic image sets: what generators export and what the quality and study pages pick.

A synthetic set is `<name>.npz` (arrays `images` uint8 N×H×W×C, `labels`, `class_names`, and
`trained_on`, the fingerprints of its generator's real images, when they are known) with a
sidecar `<name>.json` of metadata (generator, source run, dataset spec, image size, channels,
class counts, training seconds, and its `provenance`: see data/provenance.py). A set saved in a
run's artifacts is identified by `set_id`, "<run id>/<set name>", never by its absolute path.
`incompatibility` says whether a set fits a dataset; finding the sets in run directories is the
lab's business (`lab.sets`).
"""
from __future__ import annotations

import io
import math
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from data.datasets import DatasetSpec
from data.files import atomic_save, atomic_write_json, read_json
from data.imageset import ImageSet
from data.medmnist_source import DatasetError
from data.provenance import Provenance


def save_set(images: ImageSet, directory: Path, name: str = "synthetic", provenance: Provenance | None = None,
             trained_on: np.ndarray | None = None, **meta) -> Path:
    """Write an ImageSet as a synthetic set in `directory` (usually a run's artifacts/).

    `provenance` says what its generator learned from (None: unknown, not recorded by its
    writer); a known one comes with `trained_on`, the uint64 fingerprints of those real images.
    """
    directory = Path(directory)
    if provenance is None:
        provenance = Provenance.unknown("not recorded by the code that saved it")
    provenance.check(trained_on, f"{name}.npz")
    arrays = {"images": images.images, "labels": images.labels, "class_names": np.array(images.class_names)}
    if provenance.known:
        arrays["trained_on"] = np.asarray(trained_on, dtype=np.uint64)
    path = atomic_save(directory / f"{name}.npz", lambda tmp: np.savez_compressed(tmp, **arrays))
    meta = {"name": meta.pop("display_name", "") or f"{directory.parent.name}/{name}",
            "count": len(images), "size": images.size, "channels": images.channels,
            "class_counts": images.class_counts().tolist(), "created": time.time(), **meta,
            "provenance": provenance.to_dict()}
    atomic_write_json(path.with_suffix(".json"), meta)
    return path


def load_set(path: str | Path, name: str = "") -> ImageSet:
    """Read a synthetic set npz; raises DatasetError naming the file (`name`, else the file's name)."""
    return read_set(path, name)[0]


def read_set(path: str | Path, name: str = "") -> tuple[ImageSet, list[str]]:
    """A synthetic set npz, and how its images were converted to uint8 (e.g. floats in [0, 1]).

    Uploaded files are untrusted: the arrays' headers are read first and the image count and
    bytes capped (`MAX_SET_IMAGES`, `MAX_SET_BYTES`) before anything is loaded, pickles are never
    loaded, images must be N×H×W or N×H×W×C (C 1 or 3) integers in 0-255 or floats in [0, 1] or
    [-1, 1], and labels whole non-negative numbers, one per image. Raises DatasetError naming the
    file (`name`, else the file's name) with the reason.
    """
    path = Path(path)
    name = name or path.name
    try:
        with open(path, "rb") as f:
            npy = f.read(6) == b"\x93NUMPY"
    except OSError as e:
        raise DatasetError(f"{name}: cannot be read ({e.strerror or e})") from None
    if npy:
        raise DatasetError(f"{name}: a single .npy array, not an .npz archive with 'images' and 'labels' "
                           "(save one with np.savez)")
    try:
        with zipfile.ZipFile(path) as archive:
            present = [key for key in ("images", "labels", "class_names") if _checked_header(archive, key, name)]
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in present}
    except DatasetError:
        raise
    except Exception as e:  # noqa: BLE001 - a torn or tampered file: any failure to parse it means unusable
        raise DatasetError(f"{name}: cannot be read as an npz ({type(e).__name__}: {str(e)[:200]})") from None
    notes: list[str] = []
    images = _pixels(arrays["images"], name, notes)
    labels = _labels(arrays["labels"], len(images), name)
    names = _class_names(arrays.get("class_names"), labels, name)
    return ImageSet(images, labels, names, split="synthetic", source=path.stem), notes


MAX_SET_IMAGES = 250_000  # above the Samples page's largest export: 20,000 per class × 11 classes (OrganMNIST)
MAX_SET_BYTES = 1024**3  # image data as stored (1 GiB)
MAX_SET_CLASSES = 1000
MAX_LABEL_BYTES = 64 * 1024**2  # labels and class names together stay far below this
NOT_PIXELS = {"b": "boolean", "c": "complex numbers", "U": "text", "S": "text", "V": "structured records",
              "M": "dates", "m": "time spans", "O": "Python objects"}


def _checked_header(archive: zipfile.ZipFile, key: str, name: str) -> bool:
    """Whether the npz holds `key`, after refusing a header that declares too much or more than it holds."""
    try:
        info = archive.getinfo(f"{key}.npy")
    except KeyError:
        if key == "class_names":
            return False
        raise DatasetError(f"{name}: has no '{key}' array; a synthetic set npz holds 'images' and 'labels'") from None
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise DatasetError(f"{name}: '{key}' is in .npy format {version[0]}.{version[1]}; expected 1.0 or 2.0")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        stored = info.file_size - f.tell()
    if dtype.hasobject:
        raise DatasetError(f"{name}: '{key}' holds Python objects, which are never unpickled")
    declared = math.prod(shape) * dtype.itemsize
    if key == "images" and shape and shape[0] > MAX_SET_IMAGES:
        raise DatasetError(f"{name}: 'images' declares {shape[0]} images; the limit is {MAX_SET_IMAGES} images "
                           "per set")
    if key == "images" and declared > MAX_SET_BYTES:
        raise DatasetError(f"{name}: 'images' declares {declared / 1e9:.1f} GB of data; the limit is 1 GiB per set")
    if key != "images" and declared > MAX_LABEL_BYTES:
        raise DatasetError(f"{name}: '{key}' declares {declared / 1e6:.0f} MB; the limit is "
                           f"{MAX_LABEL_BYTES // 1024**2} MiB")
    if declared > stored:
        raise DatasetError(f"{name}: '{key}' declares {declared} bytes of data but holds {stored}")
    return True


def _pixels(images: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
    """uint8 N×H×W×C images; floats in [0, 1] or [-1, 1] and other integers in 0-255 are converted (noted)."""
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DatasetError(f"{name}: images must be N×H×W or N×H×W×C with 1 or 3 channels; "
                           f"got shape {images.shape}")
    if not len(images):
        raise DatasetError(f"{name}: holds no images")
    if not images.size:
        raise DatasetError(f"{name}: images of {images.shape[1]}×{images.shape[2]} pixels hold nothing")
    if images.dtype.kind not in "uif":
        raise DatasetError(f"{name}: images of type {images.dtype} ({NOT_PIXELS.get(images.dtype.kind, 'not numbers')})"
                           " are not pictures; expected uint8 0-255 or floats in [0, 1] or [-1, 1]")
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind == "f":
        return _float_pixels(images, name, notes)
    lo, hi = int(images.min()), int(images.max())
    if lo < 0 or hi > 255:
        raise DatasetError(f"{name}: images must be 0-255 (uint8); got {images.dtype} values in [{lo}, {hi}]")
    notes.append(f"{images.dtype} images cast to uint8 (all values within 0-255)")
    return images.astype(np.uint8)


def _float_pixels(images: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
    if not np.isfinite(images).all():
        raise DatasetError(f"{name}: images hold NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if 0 <= lo and hi <= 1:
        notes.append("float images in [0, 1] scaled to 0-255")
        return np.round(images * 255).astype(np.uint8)
    if -1 <= lo and hi <= 1:
        notes.append("float images in [-1, 1] mapped to 0-255")
        return np.round((images + 1) * 127.5).astype(np.uint8)
    raise DatasetError(f"{name}: float images must lie in [0, 1] or [-1, 1]; these range over [{lo:g}, {hi:g}]")


def _labels(labels: np.ndarray, count: int, name: str) -> np.ndarray:
    """int64 class indices, one per image (a MedMNIST-style N×1 column is taken as one per image)."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DatasetError(f"{name}: labels must be one label per image (shape (N,)); got shape {labels.shape}")
    if len(labels) != count:
        raise DatasetError(f"{name}: {count} images but {len(labels)} labels")
    if labels.dtype.kind not in "uif":
        raise DatasetError(f"{name}: labels must be whole numbers (class indices); got {labels.dtype}")
    if labels.dtype.kind == "f":
        fractional = labels[~np.isfinite(labels) | (labels != np.round(labels))]
        if len(fractional):
            raise DatasetError(f"{name}: labels must be whole numbers (class indices); got fractional values "
                               f"such as {fractional[0]:g}")
    if len(labels) and labels.min() < 0:
        raise DatasetError(f"{name}: labels must be class indices; got negative values such as {labels.min():g}")
    if len(labels) and labels.max() >= MAX_SET_CLASSES:
        raise DatasetError(f"{name}: label {labels.max():g} is beyond the limit of {MAX_SET_CLASSES} classes")
    return labels.astype(np.int64)


def _class_names(names: np.ndarray | None, labels: np.ndarray, name: str) -> list[str]:
    """The stored class names, or "0", "1", … up to the largest label when the set has none."""
    classes = int(labels.max(initial=-1)) + 1
    if names is None:
        return [str(i) for i in range(classes)]
    if names.dtype.kind not in "US" or names.ndim != 1:
        raise DatasetError(f"{name}: class_names must be a list of text; got {names.dtype} of shape {names.shape}")
    if len(names) > MAX_SET_CLASSES:
        raise DatasetError(f"{name}: {len(names)} class names; the limit is {MAX_SET_CLASSES}")
    if classes > len(names):
        raise DatasetError(f"{name}: labels go up to {classes - 1} but there are only {len(names)} class names")
    return [n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in names.tolist()]


def read_meta(path: str | Path) -> dict:
    """The sidecar metadata of a set's npz; {} when it is missing or unreadable."""
    meta = read_json(Path(path).with_suffix(".json"), default={})
    return meta if isinstance(meta, dict) else {}


def set_id(path: str | Path) -> str:
    """The one rule for a set's id: "<run id>/<set name>" for a set saved in a run's artifacts/ (it
    survives moving the runs folder), else the path itself; an id given as text is returned as it is."""
    path = Path(path)
    if path.parent.name == "artifacts" and path.parent.parent.name:
        return f"{path.parent.parent.name}/{path.stem}"
    return str(path)


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
    """The set as an image-folder zip, `<class folder>/<index>.png` (see `class_folders`); the
    Quality page's upload reads it back."""
    folders = class_folders(images.class_names)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, (image, label) in enumerate(zip(images.images, images.labels)):
            png = io.BytesIO()
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(png, format="PNG")
            zf.writestr(f"{folders[label]}/{i:06d}.png", png.getvalue())
    return buffer.getvalue()


def class_folders(class_names: list[str]) -> list[str]:
    """The folder of each class in an image-folder zip: its name with every character other than
    letters, digits, `-` and `_` replaced by `_` (at most 48 of them), or its index for every class
    when two names would share a folder."""
    safe = ["".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:48] or "class" for name in class_names]
    return safe if len(set(safe)) == len(safe) else [str(k) for k in range(len(class_names))]
