"""The five piqa metrics: ideal values for identical images, the right direction, small images."""
from __future__ import annotations

import numpy as np
import pytest

from metrics.quality import METRICS, applicability, score_pairs


def noisy_copy(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(images.astype(float) + rng.normal(0, sigma, images.shape), 0, 255).astype(np.uint8)


def pure_noise(like: np.ndarray, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, like.shape, dtype=np.uint8)


@pytest.fixture(params=["rgb", "gray"])
def real28(request, derma, pneumonia):
    data = derma if request.param == "rgb" else pneumonia
    return data.train.images[:120]


def test_identical_images_score_the_ideal_value_of_every_metric(real28):
    values = score_pairs(real28, real28)
    assert set(values) == set(METRICS)
    for key, v in values.items():
        assert np.isfinite(v).all(), key
        np.testing.assert_allclose(v, METRICS[key].ideal, atol=1e-3 * max(1, METRICS[key].ideal), err_msg=key)


def test_noisy_copy_beats_pure_noise_on_every_metric_in_its_direction(real28):
    near = score_pairs(noisy_copy(real28, 8), real28)
    far = score_pairs(pure_noise(real28), real28)
    for key, metric in METRICS.items():
        a, b = np.nanmean(near[key]), np.nanmean(far[key])
        assert metric.better(a, b), f"{key}: noisy copy {a:.4f} vs noise {b:.4f} ({metric.arrow})"


def test_more_noise_scores_worse_so_directions_are_not_flipped(derma):
    real = derma.train.images[:80]
    mild, strong = score_pairs(noisy_copy(real, 5), real), score_pairs(noisy_copy(real, 40), real)
    assert METRICS["ms_gmsd"].higher_is_better is False and METRICS["mdsi"].higher_is_better is False
    for key, metric in METRICS.items():
        assert metric.better(mild[key].mean(), strong[key].mean()), key


def test_images_below_a_metrics_minimum_are_upsampled_or_reported_not_applicable(derma):
    tiny = derma.train.images[:30, ::4, ::4]  # 7 px, below SSIM's 11-px window
    assert applicability(METRICS["ssim"], 7) == "upsampled 7→11 px"
    assert applicability(METRICS["ssim"], 7, "skip").startswith("not applicable")
    upsampled = score_pairs(noisy_copy(tiny, 5), tiny)
    skipped = score_pairs(noisy_copy(tiny, 5), tiny, small="skip")
    assert np.isfinite(upsampled["ssim"]).all() and np.isfinite(upsampled["haarpsi"]).all()
    assert np.isnan(skipped["ssim"]).all() and np.isnan(skipped["ms_gmsd"]).all()
    assert np.isfinite(skipped["psnr"]).all()  # PSNR has no minimum size


def test_mismatched_pairs_and_unknown_metrics_are_refused(derma):
    a = derma.train.images[:4]
    with pytest.raises(ValueError, match="same shape"):
        score_pairs(a, a[:3])
    with pytest.raises(ValueError, match="unknown metric"):
        score_pairs(a, a, metrics=["lpips"])
