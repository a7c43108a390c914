"""DatasetSpec: checked where it is built, strict about keys, and round-trips through config.json."""
from __future__ import annotations

import pytest

from data.config import ConfigError
from data.datasets import DatasetSpec, load_dataset


@pytest.mark.parametrize("size", [0, -5, 1, 7, 513])
def test_a_size_outside_8_to_512_is_refused(size):
    with pytest.raises(ConfigError, match=f"DatasetSpec.size must be at (least 8|most 512); got {size}"):
        DatasetSpec(size=size)


@pytest.mark.parametrize("fields, message", [
    ({"source": "zip"}, "source must be one of 'medmnist', 'folder'"),
    ({"channels": 2}, "channels must be one of 0, 1, 3"),
    ({"source": "folder"}, "a folder dataset needs the folder's path"),
    ({"source": "folder", "path": "  "}, "a folder dataset needs the folder's path"),
    ({"val_fraction": 0.0}, "val_fraction must be above 0"),
    ({"test_fraction": 1.5}, "test_fraction must be at most 1"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "must leave images for training"),
    ({"split_seed": -1}, "split_seed must be at least 0"),
    ({"size": "64"}, "size must be a whole number"),
])
def test_bad_fields_are_refused_with_a_message_naming_them(fields, message):
    with pytest.raises(ConfigError, match=message):
        DatasetSpec(**fields)


def test_unknown_keys_are_refused_and_a_saved_spec_round_trips():
    with pytest.raises(ConfigError, match="unknown setting.*'sise'"):
        DatasetSpec.from_dict({"name": "pneumoniamnist", "sise": 28})
    spec = DatasetSpec(source="folder", name="oct", size=64, path="/data/OCT2017", channels=1, split_seed=3)
    assert DatasetSpec.from_dict(spec.to_dict()) == spec
    assert spec.label == "oct (64px)"


def test_specs_are_frozen_and_equal_specs_share_one_loaded_dataset():
    spec = DatasetSpec(name="pneumoniamnist", size=28)
    with pytest.raises(AttributeError):
        spec.size = 64
    assert load_dataset(spec) is load_dataset(spec.to_dict())
