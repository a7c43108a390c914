"""ACGAN's class conditioning works: a classifier trained only on real PneumoniaMNIST images
recognizes the class an ACGAN sample was drawn for far more often than chance."""
from __future__ import annotations

import numpy as np

from gans.config import make_config
from gans.sampling import synthesize
from gans.train import train
from metrics.encoder import EncoderConfig, train_encoder


def recognition_rate(classifier, synthetic) -> float:
    """Balanced accuracy: the mean over classes of the share recognized as their own class."""
    predicted = classifier.predict(synthetic.images)
    return float(np.mean([(predicted[synthetic.labels == k] == k).mean() for k in np.unique(synthetic.labels)]))


def test_acgan_samples_are_recognized_as_their_class_by_a_real_data_classifier(pneumonia, runs_root):
    classifier = train_encoder(pneumonia.train, pneumonia.val, EncoderConfig(epochs=2), cache=False)
    real_rate = classifier.info["val_balanced_accuracy"]
    chance = 1 / pneumonia.train.num_classes

    config = make_config("acgan", steps=300, width=16, batch_size=32, device="cpu", log_every=50)
    gan = train(config, images=pneumonia.train)
    rate = recognition_rate(classifier, synthesize(gan, 40, pneumonia.class_names, seed=0))
    print(f"recognized {rate:.2f}, chance {chance:.2f}, real val {real_rate:.2f}")
    assert rate > 0.7, f"ACGAN samples recognized {rate:.2f} (chance {chance:.2f}, real val {real_rate:.2f})"
