"""MedMNIST through the `medmnist` package.

The npz files are read from `LAB_DATA_DIR` with `download=False` when present; otherwise the
package's real download runs (online users), and an offline machine gets a clear message.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from data.imageset import ImageSet
from data.paths import data_dir

SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset cannot be used as asked; the message says why and names the file."""


def medmnist_info() -> dict[str, dict]:
    """medmnist.INFO (flag -> labels, python class, ...). Read from the package's info.py alone unless
    the package is loaded already: the package's __init__ imports torch, seconds that listing files
    (`python -m lab datasets`) need not wait for."""
    if "medmnist" in sys.modules:
        return sys.modules["medmnist"].INFO
    try:
        spec = importlib.util.find_spec("medmnist")
        info_spec = importlib.util.spec_from_file_location("medmnist_info", Path(spec.origin).parent / "info.py")
        info = importlib.util.module_from_spec(info_spec)
        info_spec.loader.exec_module(info)
        return info.INFO
    except Exception:  # another layout of the package: pay for the full import
        import medmnist

        return medmnist.INFO


def flags_2d() -> list[str]:
    return sorted(flag for flag in medmnist_info() if not flag.endswith("3d"))


def npz_name(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def npz_path(flag: str, size: int, root: Path | None = None) -> Path:
    return (root or data_dir()) / npz_name(flag, size)


def class_names(flag: str) -> list[str]:
    labels = medmnist_info()[flag]["label"]
    return [labels[str(i)] for i in range(len(labels))]


def available(root: Path | None = None) -> list[tuple[str, int, Path]]:
    """MedMNIST files present under the data directory: (flag, size, path)."""
    root = root or data_dir()
    found = []
    for flag in flags_2d():
        for size in SIZES:
            path = npz_path(flag, size, root)
            if path.exists():
                found.append((flag, size, path))
    return found


def load(flag: str, size: int = 28, root: Path | None = None) -> dict[str, ImageSet]:
    """All three splits of a 2D MedMNIST dataset as ImageSets."""
    import medmnist

    flag = flag.lower()
    if flag not in medmnist.INFO or flag.endswith("3d"):
        raise DatasetError(f"Unknown 2D MedMNIST flag '{flag}'. Choose one of: {', '.join(flags_2d())}")
    if size not in SIZES:
        raise DatasetError(f"MedMNIST size must be one of {SIZES}, got {size}")
    root = root or data_dir()
    path = npz_path(flag, size, root)
    if not path.exists():
        _download(flag, size, root, path)
    cls = getattr(medmnist, medmnist.INFO[flag]["python_class"])
    names = class_names(flag)
    splits = {}
    for split in SPLITS:
        try:
            ds = cls(split=split, root=str(root), download=False, size=size)
        except Exception as e:  # medmnist raises bare RuntimeErrors for unreadable files
            raise DatasetError(f"{path} could not be read as MedMNIST '{flag}': {e}") from None
        labels = np.asarray(ds.labels)
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise DatasetError(f"{path}: multi-label datasets ({flag}) are not supported")
        splits[split] = ImageSet(np.asarray(ds.imgs, dtype=np.uint8), labels.reshape(-1), names,
                                 split, source=f"{flag}@{size}")
    return splits


def _download(flag: str, size: int, root: Path, path: Path) -> None:
    import medmnist

    root.mkdir(parents=True, exist_ok=True)
    cls = getattr(medmnist, medmnist.INFO[flag]["python_class"])
    try:
        cls(split="train", root=str(root), download=True, size=size)
    except Exception as e:  # the package raises many kinds on network failure
        raise DatasetError(
            f"{path} is not on disk and downloading it failed ({type(e).__name__}: {e}). "
            f"Put {path.name} in {root} or set LAB_DATA_DIR to the folder that holds it."
        ) from None
    if not path.exists():
        raise DatasetError(f"Download of {flag} (size {size}) finished but {path} is missing")
