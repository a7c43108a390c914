"""MedMNIST through the medmnist package on the real DermaMNIST and PneumoniaMNIST files."""
from __future__ import annotations

import numpy as np
import pytest

from data import medmnist_source
from data.datasets import DatasetSpec, load_dataset
from data.medmnist_source import DatasetError


def test_dermamnist_loads_three_rgb_splits_with_its_seven_classes(derma):
    assert [len(derma.splits[s]) for s in ("train", "val", "test")] == [7007, 1003, 2005]
    assert derma.train.images.shape[1:] == (28, 28, 3) and derma.train.images.dtype == np.uint8
    assert len(derma.class_names) == 7 and derma.class_names[5] == "melanocytic nevi"
    assert int(np.argmax(derma.train.class_counts())) == 5  # the heavy imbalance the lab is about
    assert derma.train.images.std() > 10


def test_pneumoniamnist_loads_grayscale_with_one_channel(pneumonia):
    assert [len(pneumonia.splits[s]) for s in ("train", "val", "test")] == [4708, 524, 624]
    assert pneumonia.train.channels == 1 and pneumonia.class_names == ["normal", "pneumonia"]
    assert pneumonia.test.class_counts().tolist() == [234, 390]


def test_ten_percent_regime_keeps_class_proportions(derma):
    subset = derma.train.stratified_subset(0.1, seed=0)
    full, kept = derma.train.class_counts(), subset.class_counts()
    assert np.all(np.abs(kept - 0.1 * full) <= 1) and kept.min() >= 1


def test_available_lists_the_files_in_the_data_dir():
    found = {(flag, size) for flag, size, _ in medmnist_source.available()}
    assert {("dermamnist", 28), ("pneumoniamnist", 28)} <= found


def test_unknown_flag_wrong_size_and_unreadable_file_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="Unknown 2D MedMNIST flag 'dermamnist3d'"):
        medmnist_source.load("dermamnist3d")
    with pytest.raises(DatasetError, match="size must be one of"):
        medmnist_source.load("dermamnist", 32)
    (tmp_path / "dermamnist.npz").write_bytes(b"not an npz")
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match="dermamnist.npz could not be read"):
        load_dataset(DatasetSpec(name="dermamnist", size=28, split_seed=99))  # a spec not cached yet
