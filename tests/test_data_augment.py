"""Standard augmentation pipelines on real DermaMNIST (RGB) and PneumoniaMNIST (grayscale) images."""
from __future__ import annotations

import numpy as np
import pytest

from data.augment import AUGMENTATIONS, DEFAULT_PIPELINE, NOT_MIRRORED, apply, build_pipeline, default_pipeline


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_every_augmentation_changes_images_and_keeps_shape_and_channels(name, derma, pneumonia):
    for dataset in (derma, pneumonia):
        images = dataset.train.images[:16]
        out = apply(build_pipeline([name], strength=1.0, p=1.0), images, seed=3)
        assert out.shape == images.shape and out.dtype == np.uint8
        assert (out != images).any(), f"{name} left every {dataset.spec.name} image unchanged"


def test_same_seed_gives_same_images_and_another_seed_differs(derma):
    images = derma.train.images[:32]
    pipeline = build_pipeline(["rotate", "affine", "brightness_contrast", "coarse_dropout"], strength=0.8, p=0.7)
    first, again = apply(pipeline, images, seed=7), apply(pipeline, images, seed=7)
    other = apply(pipeline, images, seed=8)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_probability_zero_and_empty_pipeline_leave_images_unchanged(pneumonia):
    images = pneumonia.train.images[:8]
    assert np.array_equal(apply(build_pipeline(list(AUGMENTATIONS), p=0.0), images, seed=0), images)
    assert np.array_equal(apply(build_pipeline([]), images, seed=0), images)


def test_strength_scales_how_much_images_change(derma):
    images = derma.train.images[:64]
    change = [np.abs(apply(build_pipeline(["rotate", "brightness_contrast"], strength=s, p=1.0), images, seed=1)
                     .astype(int) - images).mean() for s in (0.1, 1.0)]
    assert change[0] < change[1]


def test_unknown_name_and_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="Unknown augmentation 'sharpen'"):
        build_pipeline(["sharpen"])
    with pytest.raises(ValueError, match="strength"):
        build_pipeline(["hflip"], strength=0)
    with pytest.raises(ValueError, match="uint8"):
        apply(build_pipeline(["hflip"]), np.zeros((2, 8, 8, 1), dtype=np.float32), seed=0)


@pytest.mark.parametrize("flag", ["pneumoniamnist", "chestmnist", "organamnist", "organcmnist", "organsmnist"])
def test_the_default_never_mirrors_images_whose_anatomy_has_a_side(flag):
    pipeline = default_pipeline(flag)
    assert "hflip" not in pipeline and pipeline == [n for n in DEFAULT_PIPELINE if n != "hflip"]
    assert NOT_MIRRORED[flag].endswith(".")  # the one sentence the Data page shows


@pytest.mark.parametrize("flag", ["dermamnist", "pathmnist", "bloodmnist", "my-folder"])
def test_the_default_mirrors_images_without_a_side(flag):
    assert default_pipeline(flag) == DEFAULT_PIPELINE and flag not in NOT_MIRRORED
    default_pipeline(flag).append("blur")
    assert default_pipeline(flag) == DEFAULT_PIPELINE  # a caller's edit does not change the default
