"""Nearest-neighbour pairing and the memorization check find what was planted."""
from __future__ import annotations

import numpy as np
import pytest

from data.imageset import ImageSet
from metrics.memorization import memorization
from metrics.pairing import nearest_neighbours, nearest_pairing, random_pairing
from metrics.stats import percent_interval, proportion


def noisy_set(real: ImageSet, n: int, sigma: float, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(real), n, replace=False)
    images = np.clip(real.images[idx].astype(float) + rng.normal(0, sigma, real.images[idx].shape), 0, 255)
    return ImageSet(images.astype(np.uint8), real.labels[idx], real.class_names, "synthetic")


def test_nearest_pairing_matches_a_brute_force_search_within_the_class(derma):
    train = derma.train.take(np.arange(600))
    query = noisy_set(derma.test, 25, 30)
    pairing = nearest_pairing(nearest_neighbours(query, train, chunk=7))
    flat_train = train.images.reshape(len(train), -1).astype(float) / 255
    for i, (image, label) in enumerate(zip(query.images, query.labels)):
        same = np.flatnonzero(train.labels == label)
        d = np.sqrt(((flat_train[same] - image.reshape(-1) / 255) ** 2).mean(1))
        assert pairing.real_index[i] == same[d.argmin()]
        assert abs(pairing.distance[i] - d.min()) < 1e-4
        assert train.labels[pairing.real_index[i]] == label


def test_nearest_pairing_finds_an_exact_copy_planted_among_synthetic_images(pneumonia):
    train = pneumonia.train
    synthetic = noisy_set(pneumonia.val, 200, 25)
    planted_at, source = 137, 4321
    synthetic.images[planted_at] = train.images[source]
    synthetic.labels[planted_at] = train.labels[source]
    neighbours = nearest_neighbours(synthetic, train)
    pairing = nearest_pairing(neighbours)
    assert pairing.real_index[planted_at] == source
    assert pairing.distance[planted_at] < 1e-3
    heldout = nearest_neighbours(pneumonia.val, train).any_distance
    memo = memorization(neighbours.any_distance, heldout)
    assert memo.suspected[planted_at]
    assert memo.closest(1)[0] == planted_at
    assert memo.fraction.mean < 0.1  # the noisy images are not copies


def test_a_memorizing_generator_is_flagged_far_more_than_new_images(derma):
    train = derma.train
    heldout = nearest_neighbours(derma.val, train).any_distance
    copies = train.take(np.arange(0, 3000, 15))  # 200 training images returned verbatim
    fresh = derma.test.take(np.arange(200))  # 200 real images the training set never saw
    copied = memorization(nearest_neighbours(copies, train).any_distance, heldout)
    new = memorization(nearest_neighbours(fresh, train).any_distance, heldout)
    assert copied.fraction.mean == 1.0
    assert new.fraction.mean < 0.05
    assert new.fraction.hi < copied.fraction.lo


def test_random_pairing_is_the_older_protocol_and_pairs_farther_than_nearest(derma):
    synthetic = noisy_set(derma.test, 100, 10)
    nearest = nearest_pairing(nearest_neighbours(synthetic, derma.train))
    rand = random_pairing(synthetic, derma.train, seed=3)
    assert rand.strategy == "random" and len(rand.real_index) == 100
    assert rand.distance.mean() > 1.5 * nearest.distance.mean()


def test_no_copies_among_1400_images_has_an_exact_interval_not_a_zero_width_one():
    memo = memorization(np.full(1400, 0.2), np.full(500, 0.1))  # every synthetic image far from the training set
    assert memo.suspected.sum() == 0
    assert percent_interval(memo.fraction) == "0.0% [0.0%, 0.26%]"
    # Clopper-Pearson: the upper end is the rate at which seeing no copy in 1400 images has a 2.5% chance
    assert (1 - memo.fraction.hi) ** 1400 == pytest.approx(0.025)


def test_the_proportion_interval_is_exact_at_both_ends_and_holds_its_share():
    every = proportion(200, 200)
    assert every.mean == every.hi == 1.0 and every.lo ** 200 == pytest.approx(0.025)
    some = proportion(7, 100)
    assert some.lo < 0.07 < some.hi and some.n == 100
    assert np.isnan(proportion(0, 0).mean)
