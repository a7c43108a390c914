"""One way to name a dataset (`DatasetSpec`) and one way to load it (`load_dataset`).

Every job config carries a DatasetSpec, so a run can be reproduced from its config alone.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache

from data.imageset import ImageSet
from data.medmnist_source import DatasetError

DEFAULT_FLAG = "dermamnist"


@dataclass(frozen=True)
class DatasetSpec:
    source: str = "medmnist"  # "medmnist" | "folder" (an uploaded zip is extracted to a folder)
    name: str = DEFAULT_FLAG  # MedMNIST flag; for folders a display name
    size: int = 28  # working size in pixels (images are square after import)
    path: str = ""  # folder root for source="folder"
    channels: int = 0  # folders: 1 or 3; 0 = detect (grayscale if every image is)
    val_fraction: float = 0.1  # folders without a val/ split
    test_fraction: float = 0.2  # folders without a test/ split
    split_seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetSpec":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def label(self) -> str:
        return f"{self.name} ({self.size}px)"


@dataclass
class Dataset:
    spec: DatasetSpec
    splits: dict[str, ImageSet]
    report: list[str] = field(default_factory=list)  # skipped files and other warnings

    @property
    def train(self) -> ImageSet:
        return self.splits["train"]

    @property
    def val(self) -> ImageSet:
        return self.splits["val"]

    @property
    def test(self) -> ImageSet:
        return self.splits["test"]

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names


def load_dataset(spec: DatasetSpec | dict) -> Dataset:
    """Load (once per process) the dataset a spec names."""
    if isinstance(spec, dict):
        spec = DatasetSpec.from_dict(spec)
    return _load_cached(spec)


@lru_cache(maxsize=8)
def _load_cached(spec: DatasetSpec) -> Dataset:
    if spec.source == "medmnist":
        from data import medmnist_source

        return Dataset(spec, medmnist_source.load(spec.name, spec.size))
    if spec.source == "folder":
        from data import folder

        splits, report = folder.load(spec)
        return Dataset(spec, splits, report)
    raise DatasetError(f"Unknown dataset source '{spec.source}' (expected 'medmnist' or 'folder')")
