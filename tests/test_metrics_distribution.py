"""FID, KID, precision/recall, density/coverage: sanity anchors in a small trained encoder's space."""
from __future__ import annotations

import os

import numpy as np
import pytest

from metrics.distribution import distribution_scores, kid
from metrics.encoder import EncoderConfig, load_encoder, train_encoder

TINY = EncoderConfig(width=8, feature_dim=32, epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def encoder(derma, tmp_path_factory):
    os.environ["LAB_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield train_encoder(derma.train.stratified_subset(0.3), derma.val, TINY)
    del os.environ["LAB_CACHE_DIR"]


def test_encoder_learns_the_real_data_beyond_chance(encoder, derma):
    assert encoder.info["val_balanced_accuracy"] > encoder.info["val_balanced_chance"] + 0.1
    predicted = encoder.predict(derma.test.images[:400])
    assert len(np.unique(predicted)) >= 2  # not a constant classifier
    assert encoder.features(derma.test.images[:5]).shape == (5, 32)


def test_encoder_is_cached_on_disk_and_reloads_with_the_same_features(encoder, derma):
    again = train_encoder(derma.train.stratified_subset(0.3), derma.val, TINY)  # a cache hit, not training
    assert again.info["fingerprint"] == encoder.info["fingerprint"]
    x = derma.test.images[:16]
    np.testing.assert_allclose(again.features(x), encoder.features(x), rtol=1e-5, atol=1e-5)


def test_real_test_images_score_near_ideal_and_noise_and_collapse_score_badly(encoder, derma):
    n = 2000  # equal set sizes: coverage and recall depend on the ratio
    real = encoder.features(derma.train.images[:n])
    test = distribution_scores(real, encoder.features(derma.test.images[:n]))
    rng = np.random.default_rng(0)
    noise = distribution_scores(real, encoder.features(rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)))
    collapsed = distribution_scores(real, encoder.features(np.repeat(derma.train.images[:1], n, axis=0)))
    assert test["fid"] < 0.1 * noise["fid"] and test["fid"] < 0.1 * collapsed["fid"]
    assert test["kid"] < 0.1 * noise["kid"]
    assert test["precision"] > 0.6 and noise["precision"] < 0.1
    assert test["recall"] > 0.5 and collapsed["recall"] < 0.05
    assert 0.5 < test["density"] < 1.5 and test["coverage"] > 0.5
    assert collapsed["coverage"] < 0.05 and noise["coverage"] < 0.05


def test_kid_works_for_a_set_smaller_than_the_default_subset(encoder, derma):
    real = encoder.features(derma.train.images[:3000])
    small_same = kid(real, encoder.features(derma.test.images[:40]))
    small_noise = kid(real, encoder.features(np.random.default_rng(1).integers(0, 256, (40, 28, 28, 3), np.uint8)))
    assert np.isfinite(small_same[0]) and small_same[0] < small_noise[0]


def test_a_corrupt_encoder_checkpoint_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="broken.pt"):
        load_encoder(bad, 3)


def test_class_matched_reference_follows_the_synthetic_class_mix_without_duplicates(derma):
    from metrics.scoring import class_matched_index

    labels = derma.train.labels
    balanced = class_matched_index(labels, np.array([200] * 7))
    counts = np.bincount(labels[balanced], minlength=7)
    assert len(set(counts)) == 1 and counts[0] == np.bincount(labels).min()  # the rarest class sets the size
    assert len(np.unique(balanced)) == len(balanced)
    only_two = class_matched_index(labels, np.array([0, 0, 0, 0, 30, 10, 0]))
    assert set(labels[only_two]) == {4, 5}
    kept = np.bincount(labels[only_two], minlength=7)
    assert kept[4] / kept[5] == pytest.approx(3, rel=0.01)
