"""Did the generator copy its training images?

A synthetic image is a suspected copy when it sits closer to its nearest training image than
almost every genuinely new real image does: the threshold is a low quantile (default 1%) of
the nearest-training-image distances of real held-out images. A generator that makes new
images flags about that quantile's share; one that memorises flags far more. Distances are
RMS pixel differences on a [0, 1] scale (see metrics.pairing).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrics.stats import Estimate, proportion

EXACT_COPY = 0.5 / 255  # below half a grey level per pixel, two images are the same picture


@dataclass
class Memorization:
    threshold: float  # RMS distance below which a synthetic image is a suspected copy
    quantile: float  # of held-out real distances used as the threshold
    suspected: np.ndarray  # bool per synthetic image
    distance: np.ndarray  # each synthetic image's distance to its nearest training image
    heldout_distance: np.ndarray

    @property
    def fraction(self) -> Estimate:
        """Share of suspected copies with its exact (Clopper–Pearson) 95% interval."""
        return proportion(int(self.suspected.sum()), len(self.suspected))

    def closest(self, k: int = 16) -> np.ndarray:
        """Indices of the k synthetic images nearest to a training image, closest first."""
        return np.argsort(self.distance, kind="stable")[:k]


def memorization(synthetic_distance: np.ndarray, heldout_distance: np.ndarray,
                 quantile: float = 0.01) -> Memorization:
    """Flag synthetic images closer to the training set than the `quantile` of held-out real images."""
    if len(heldout_distance) == 0:
        raise ValueError("memorization needs real held-out images to calibrate the threshold")
    threshold = max(float(np.quantile(heldout_distance, quantile)), EXACT_COPY)
    return Memorization(threshold, quantile, synthetic_distance <= threshold,
                        np.asarray(synthetic_distance), np.asarray(heldout_distance))
