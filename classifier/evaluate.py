"""Classifier evaluation: the numbers the study compares, computed on one real split.

`predict` runs the model over uint8 images in batches; `classification_metrics` turns labels
and class probabilities into accuracy, balanced accuracy, macro-F1, one-vs-rest AUC,
per-class recall and the confusion matrix; `Trivial` is the yardstick below every classifier:
always the training split's majority class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             recall_score, roc_auc_score)

from data.imageset import to_tensor

# Scalar metrics in the order reports show them; all in [0, 1], higher is better.
CLASSIFICATION_METRICS = ["accuracy", "balanced_accuracy", "macro_f1", "auc_ovr"]
METRIC_LABELS = {"accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy",
                 "macro_f1": "Macro-F1", "auc_ovr": "AUC (one-vs-rest)"}


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 N×H×W×C -> the model's input: float N×C×H×W in [-1, 1] (`to_tensor`), channels-last, on `device`.

    The images travel as uint8 and are converted on the device: a quarter of the bytes of floats.
    """
    x = to_tensor(images.to(device, non_blocking=True))
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N×K) for uint8 N×H×W×C images, model in eval mode."""
    images = torch.as_tensor(images)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    probs = [torch.softmax(model(to_input(images[i:i + batch_size], device)).float(), dim=1).cpu()
             for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(probs).numpy()


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Scalar metrics plus `per_class_recall` (list) and `confusion` (K×K list, rows = truth)."""
    labels = np.asarray(labels)
    k = probs.shape[1]
    pred = probs.argmax(1)
    classes = list(range(k))
    return {
        "accuracy": float(accuracy_score(labels, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, pred)),
        "macro_f1": float(f1_score(labels, pred, labels=classes, average="macro", zero_division=0)),
        "auc_ovr": auc_ovr(labels, probs),
        "per_class_recall": recall_score(labels, pred, labels=classes, average=None, zero_division=0).tolist(),
        "confusion": confusion_matrix(labels, pred, labels=classes).tolist(),
    }


def auc_ovr(labels: np.ndarray, probs: np.ndarray) -> float:
    """Macro one-vs-rest AUC over the classes present in `labels` (NaN with fewer than two).

    Probabilities are renormalised over the present classes, as scikit-learn requires.
    """
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")
    if len(present) == 2:
        return float(roc_auc_score(labels == present[1], probs[:, present[1]]))
    sub = probs[:, present] / probs[:, present].sum(1, keepdims=True)
    return float(roc_auc_score(labels, sub, multi_class="ovr", labels=present))


def evaluate(model: torch.nn.Module, images: np.ndarray | torch.Tensor, labels: np.ndarray) -> dict:
    return classification_metrics(labels, predict(model, images))


@dataclass
class Trivial:
    """The trivial classifier: always the training subset's majority class, scored on the test split."""
    majority_class: str
    scores: dict[str, float]  # CLASSIFICATION_METRICS -> its test score, fractions in [0, 1]

    @property
    def majority_rate(self) -> float:
        """Share of the test split in the majority class: the trivial classifier's accuracy."""
        return self.scores["accuracy"]

    @classmethod
    def of(cls, train_labels: np.ndarray, test_labels: np.ndarray, class_names: list[str]) -> "Trivial":
        majority = int(np.bincount(train_labels, minlength=len(class_names)).argmax())
        probs = np.full((len(test_labels), len(class_names)), 0.5 / len(class_names))
        probs[:, majority] += 0.5  # the same scores for every image: AUC 0.5
        scores = classification_metrics(test_labels, probs)
        return cls(class_names[majority], {m: scores[m] for m in CLASSIFICATION_METRICS})

    def to_dict(self) -> dict:
        return {"majority_class": self.majority_class, "scores": self.scores}

    @classmethod
    def from_dict(cls, d: dict) -> "Trivial":
        return cls(d["majority_class"], {m: float(v) for m, v in d["scores"].items()})
