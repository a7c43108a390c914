"""Synthetic sets: saved atomically, judged against a dataset by one rule, listed from run directories."""
from __future__ import annotations

import os

import numpy as np
import pytest

from data.datasets import DatasetSpec
from data.imageset import ImageSet
from data.synthetic import incompatibility, load_set, read_meta, save_set
from lab.sets import compatible_sets, list_sets

PNEUMONIA = DatasetSpec(name="pneumoniamnist", size=28)


def tiny_set(size: int = 28, channels: int = 1, classes: int = 2) -> ImageSet:
    rng = np.random.default_rng(0)
    labels = np.arange(6) % classes
    return ImageSet(rng.integers(0, 255, (6, size, size, channels), dtype=np.uint8), labels,
                    [f"c{k}" for k in range(classes)], "synthetic")


def test_a_saved_set_loads_back_with_its_metadata_and_leaves_no_temporary_file(tmp_path):
    images = tiny_set()
    path = save_set(images, tmp_path / "artifacts", "synthetic", generator="dcgan", dataset=PNEUMONIA.to_dict())
    assert sorted(os.listdir(path.parent)) == ["synthetic.json", "synthetic.npz"]
    back = load_set(path)
    assert np.array_equal(back.images, images.images) and back.labels.tolist() == images.labels.tolist()
    meta = read_meta(path)
    assert (meta["generator"], meta["size"], meta["channels"], meta["class_counts"]) == ("dcgan", 28, 1, [3, 3])


def test_a_missing_or_broken_sidecar_reads_as_no_metadata(tmp_path):
    assert read_meta(tmp_path / "none.npz") == {}
    (tmp_path / "broken.json").write_text("[1, 2")
    assert read_meta(tmp_path / "broken.npz") == {}
    (tmp_path / "list.json").write_text("[1, 2]")
    assert read_meta(tmp_path / "list.npz") == {}


@pytest.mark.parametrize("meta, reason", [
    ({"dataset": {"name": "dermamnist"}, "size": 28, "channels": 1, "class_counts": [1, 1]},
     "made from dermamnist, not pneumoniamnist"),
    ({"dataset": {"name": "pneumoniamnist"}, "size": 64, "channels": 1, "class_counts": [1, 1]},
     "64px images, not 28px"),
    ({"dataset": {"name": "pneumoniamnist"}, "size": 28, "channels": 3, "class_counts": [1, 1]},
     "3 channels, not 1"),
    ({"dataset": {"name": "pneumoniamnist"}, "size": 28, "channels": 1, "class_counts": [1, 1, 1]},
     "3 classes, more than the dataset's 2"),
])
def test_incompatibility_names_what_does_not_fit(meta, reason):
    assert incompatibility(meta, PNEUMONIA, channels=1, num_classes=2) == reason


def test_a_set_of_the_dataset_fits_even_when_its_metadata_is_sparse():
    full = {"dataset": PNEUMONIA.to_dict(), "size": 28, "channels": 1, "class_counts": [4, 2]}
    assert incompatibility(full, PNEUMONIA, channels=1, num_classes=2) is None
    assert incompatibility({"size": 28, "channels": 1}, PNEUMONIA, channels=1, num_classes=2) is None
    assert incompatibility({"class_counts": [5]}, PNEUMONIA, channels=1, num_classes=2) is None


def test_compatible_sets_lists_only_the_sets_that_fit_newest_first(runs_root):
    def export(run: str, images: ImageSet, dataset: DatasetSpec, when: int):
        path = save_set(images, runs_root / "gan" / run / "artifacts", "synthetic", generator="dcgan",
                        dataset=dataset.to_dict())
        os.utime(path, (when, when))
        return path

    older = export("a", tiny_set(), PNEUMONIA, 1_000)
    newer = export("b", tiny_set(), PNEUMONIA, 2_000)
    export("c", tiny_set(), DatasetSpec(name="breastmnist", size=28), 3_000)
    export("d", tiny_set(channels=3), PNEUMONIA, 4_000)
    export("e", tiny_set(size=32), PNEUMONIA, 5_000)
    export("f", tiny_set(classes=3), PNEUMONIA, 6_000)
    (runs_root / "gan" / "g" / "artifacts" / "no_sidecar.npz").parent.mkdir(parents=True)
    (runs_root / "gan" / "g" / "artifacts" / "no_sidecar.npz").write_bytes(b"")
    assert len(list_sets(runs_root)) == 6
    assert [s.path for s in compatible_sets(PNEUMONIA, 1, 2, runs_root)] == [newer, older]
    assert compatible_sets(PNEUMONIA, 1, 2, runs_root)[0].name == "b/synthetic"
