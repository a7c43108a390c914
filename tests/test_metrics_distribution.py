"""FID, KID, precision/recall, density/coverage: sanity anchors in a small trained encoder's space; the
encoder's step budget, its chance check and its cache key."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

import metrics.encoder
from data.hooks import Hooks, Interrupted
from data.imageset import ImageSet
from metrics.distribution import distribution_scores, feature_statistics, fid, frechet_distance, kid
from metrics.encoder import EncoderConfig, cache_path, fingerprint, load_encoder, step_budget, train_encoder
from metrics.stats import balanced_accuracy_p_value

TINY = EncoderConfig(width=8, feature_dim=32, epochs=2, batch_size=64, min_steps=60, eval_every=10)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def train_subset(derma):
    return derma.train.stratified_subset(0.3)


@pytest.fixture(scope="module")
def encoder(cache_dir, train_subset, derma):
    return train_encoder(train_subset, derma.val, TINY)


def counting_hooks(**fields) -> tuple[Hooks, list[int]]:
    """Hooks whose progress calls are recorded: the steps a training loop reports."""
    steps = []
    return Hooks(progress=lambda done, total, message="", **metrics: steps.append(done), **fields), steps


def test_encoder_learns_the_real_data_beyond_chance(encoder, derma):
    assert encoder.info["val_balanced_accuracy"] > encoder.info["val_balanced_chance"] + 0.1
    assert encoder.info["val_p_value"] < 0.01 and encoder.withheld_reason() == ""  # its numbers are reported
    predicted = encoder.predict(derma.test.images[:400])
    assert len(np.unique(predicted)) >= 2  # not a constant classifier
    assert encoder.features(derma.test.images[:5]).shape == (5, 32)


def test_encoder_is_cached_on_disk_reloads_without_training_and_retrains_without_its_file(
        encoder, train_subset, derma):
    path = cache_path(train_subset.source, encoder.info["fingerprint"])
    assert path.exists()
    hooks, steps = counting_hooks()
    again = train_encoder(train_subset, derma.val, TINY, hooks=hooks)
    assert steps == []  # loaded, not trained
    assert again.info["fingerprint"] == encoder.info["fingerprint"]
    x = derma.test.images[:16]
    np.testing.assert_allclose(again.features(x), encoder.features(x), rtol=1e-5, atol=1e-5)
    path.unlink()
    hooks, steps = counting_hooks()
    train_encoder(train_subset, derma.val, TINY, hooks=hooks)
    assert steps == list(range(1, encoder.info["steps"] + 1))
    assert path.exists()


def test_encoder_training_stops_when_asked_and_caches_nothing(cache_dir, train_subset):
    config = TINY.replace(seed=1)
    hooks, steps = counting_hooks(should_stop=lambda: True)
    with pytest.raises(Interrupted):
        train_encoder(train_subset, None, config, hooks=hooks)
    assert steps == [1] and not cache_path(train_subset.source, fingerprint(train_subset, config)).exists()


def test_a_two_class_encoder_that_cannot_learn_has_its_numbers_withheld(cache_dir, pneumonia):
    """Labels drawn at random: nothing in the images predicts them, so the encoder ends near chance."""
    rng = np.random.default_rng(0)

    def random_labels(images: np.ndarray, split: str) -> ImageSet:
        return ImageSet(images, rng.integers(0, 2, len(images)), pneumonia.class_names, split, "random-labels")

    train, val = random_labels(pneumonia.train.images[:300], "train"), random_labels(pneumonia.val.images[:200], "val")
    encoder = train_encoder(train, val, TINY.replace(min_steps=40), cache=False)
    reason = encoder.withheld_reason()
    assert "not clearly above chance, encoder-space metrics withheld" in reason
    assert f"balanced accuracy {encoder.info['val_balanced_accuracy']:.2f}, chance 0.50" in reason


def test_the_step_budget_fits_the_data_a_small_set_gets_the_minimum_a_large_one_its_epochs():
    assert step_budget(546, EncoderConfig()) == (4, 400)  # 4 epochs would be 16 steps
    assert step_budget(100_000, EncoderConfig()) == (781, 4 * 781)
    assert step_budget(50, EncoderConfig()) == (1, 400)  # fewer images than a batch: one batch a step


def test_the_encoder_cache_key_changes_with_its_config_and_its_training_recipe(train_subset, monkeypatch):
    key = fingerprint(train_subset, TINY)
    assert fingerprint(train_subset, TINY.replace(min_steps=61)) != key
    monkeypatch.setattr(metrics.encoder, "RECIPE", metrics.encoder.RECIPE + " changed")
    assert fingerprint(train_subset, TINY) != key  # an encoder cached by an older training loop is not reused


def test_the_permutation_p_value_of_balanced_accuracy_is_one_for_a_constant_guess_and_small_for_a_good_one():
    labels = np.random.default_rng(0).integers(0, 3, 300)
    assert balanced_accuracy_p_value(np.zeros(300, int), labels) == 1.0
    assert balanced_accuracy_p_value(labels, labels, n_permutations=999) == pytest.approx(1 / 1000)
    mostly = np.where(np.random.default_rng(1).random(300) < 0.3, (labels + 1) % 3, labels)
    assert balanced_accuracy_p_value(mostly, labels) < 0.01


def test_fid_from_features_with_fewer_samples_than_dimensions_equals_fid_from_statistics():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(40, 64)) ** 2, 1.5 * rng.normal(size=(25, 64)) + 0.2
    from_statistics = frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    # the statistics' product is singular: their eigenvalue route adds square roots of ~1e-13 rounding residues
    assert fid(real, fake) == pytest.approx(from_statistics, rel=1e-7)
    assert np.isnan(fid(real, fake[:1]))


def test_frechet_distance_matches_the_matrix_square_root_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    sigma1, sigma2 = a @ a.T + np.eye(6), b @ b.T + 0.5 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    direct = ((mu1 - mu2) ** 2).sum() + np.trace(sigma1 + sigma2 - 2 * linalg.sqrtm(sigma1 @ sigma2).real)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(direct, rel=1e-9)


def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    closed_form = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()  # 5 + 4 + 1
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(closed_form, rel=1e-12)
    assert closed_form == 10


def test_feature_statistics_are_float64_and_fewer_samples_than_dimensions_still_give_a_finite_zero():
    features = np.random.default_rng(1).normal(size=(10, 32)).astype(np.float32)
    mu, sigma = feature_statistics(features)
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (32, 32)
    np.testing.assert_allclose(sigma, np.cov(features.astype(np.float64), rowvar=False))
    # a singular covariance: rounding leaves eigenvalues of about ±1e-13 whose square roots add up to ~1e-6
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-5 * np.trace(sigma))


def test_real_test_images_score_near_ideal_and_noise_and_collapse_score_badly(encoder, derma):
    n = 2000  # equal set sizes: coverage and recall depend on the ratio
    real = encoder.features(derma.train.images[:n])
    fake = encoder.features(derma.test.images[:n])
    test = distribution_scores(real, fake)
    assert distribution_scores(real, fake, real_statistics=feature_statistics(real))["fid"] == test["fid"]
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
