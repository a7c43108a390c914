"""One way to load a dataset (`load_dataset`) from the one way to name it (`DatasetSpec`, data/spec.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from data.imageset import ImageSet
from data.spec import DEFAULT_FLAG, DatasetSpec  # noqa: F401 - most callers name them from here


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
    from data import folder

    splits, report = folder.load(spec)
    return Dataset(spec, splits, report)
