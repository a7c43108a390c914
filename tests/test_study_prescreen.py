"""The cheap pre-screen: train on a synthetic set alone, test on the real test split (the
classification accuracy score)."""
from __future__ import annotations

import numpy as np
import pytest

from classifier.train import TrainConfig
from data.imageset import ImageSet
from lab.study import classification_accuracy_score


def test_the_score_is_measured_on_the_real_test_split(pneumonia):
    synthetic = pneumonia.train.take(np.arange(64))
    scores = classification_accuracy_score(synthetic, pneumonia, TrainConfig(steps=4, batch_size=16, eval_every=4))
    confusion = np.array(scores["confusion"])
    assert confusion.sum() == len(pneumonia.test)
    assert np.array_equal(confusion.sum(1), pneumonia.test.class_counts())
    assert all(0 <= scores[m] <= 1 for m in ("accuracy", "balanced_accuracy", "macro_f1", "auc_ovr"))


def test_a_set_that_does_not_fit_the_dataset_is_refused_before_training(pneumonia, derma):
    with pytest.raises(ValueError, match=r"images are \(28, 28, 3\).*dataset's are \(28, 28, 1\)"):
        classification_accuracy_score(derma.train.take(np.arange(8)), pneumonia)
    outside = ImageSet(pneumonia.train.images[:8], np.full(8, 5), pneumonia.class_names, source="odd")
    with pytest.raises(ValueError, match=r"odd: needs images labelled 0\.\.1"):
        classification_accuracy_score(outside, pneumonia)
