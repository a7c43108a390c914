"""Which real image each synthetic image is compared with.

Full-reference metrics need a partner image. Pairing a generated image with an unrelated real
one (the older protocol) measures mostly how different two random images are; pairing it with
its nearest real training image of the same class asks "how close is this to a real example
of its class?". Both are here so the lab can show the difference.

Distances are root-mean-square pixel differences on a [0, 1] scale, found by batched matrix
products (‖a‖² − 2a·b + ‖b‖²), never a Python loop over pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from data.imageset import ImageSet

STRATEGIES = ("nearest", "random")


@dataclass
class Neighbours:
    """For each query image: its nearest reference image of any class, and of its own class."""
    any_index: np.ndarray
    any_distance: np.ndarray  # RMS pixel distance in [0, 1]
    same_index: np.ndarray  # -1 where the reference set has no image of the query's class
    same_distance: np.ndarray


@dataclass
class Pairing:
    strategy: str
    real_index: np.ndarray  # partner of each synthetic image, an index into the real set
    distance: np.ndarray  # RMS pixel distance of each pair


def flatten(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W×C -> float N×D in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).reshape(len(images), -1).float().div_(255.0)


@torch.no_grad()
def nearest_neighbours(query: ImageSet, reference: ImageSet, chunk: int = 1024,
                       device: str | torch.device = "cpu") -> Neighbours:
    """Nearest reference image of each query image, overall and within the query's class; the distances are
    computed on `device` (a GPU's matrix product for large sets)."""
    check_compatible(query, reference)
    ref = flatten(reference.images).to(device)
    ref_sq = ref.pow(2).sum(1)
    ref_labels = torch.from_numpy(reference.labels).to(device)
    dim = ref.shape[1]
    n = len(query)
    out = {k: np.empty(n, dtype=np.float64) for k in ("any_d", "same_d")}
    any_index, same_index = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    for start in range(0, n, chunk):
        q = flatten(query.images[start:start + chunk]).to(device)
        d2 = (q.pow(2).sum(1, keepdim=True) - 2 * q @ ref.T + ref_sq).clamp_(min=0)
        d, i = d2.min(1)
        any_index[start:start + len(q)] = i.cpu().numpy()
        out["any_d"][start:start + len(q)] = d.double().cpu().numpy()
        labels = torch.from_numpy(query.labels[start:start + chunk]).to(device)
        d2.masked_fill_(labels[:, None] != ref_labels[None, :], float("inf"))
        d, i = d2.min(1)
        missing = torch.isinf(d)
        i[missing] = -1
        same_index[start:start + len(q)] = i.cpu().numpy()
        out["same_d"][start:start + len(q)] = d.double().cpu().numpy()
    return Neighbours(any_index, np.sqrt(out["any_d"] / dim), same_index, np.sqrt(out["same_d"] / dim))


def nearest_pairing(neighbours: Neighbours) -> Pairing:
    """Each synthetic image with its nearest real training image of the same class."""
    if (neighbours.same_index < 0).any():
        missing = int((neighbours.same_index < 0).sum())
        raise ValueError(f"{missing} synthetic images have a class with no real training image")
    return Pairing("nearest", neighbours.same_index, neighbours.same_distance)


def random_pairing(synthetic: ImageSet, real: ImageSet, seed: int = 0) -> Pairing:
    """Each synthetic image with a real training image drawn at random (any class): the older protocol."""
    check_compatible(synthetic, real)
    index = np.random.default_rng(seed).integers(0, len(real), size=len(synthetic))
    diff = flatten(synthetic.images) - flatten(real.images[index])
    return Pairing("random", index, diff.pow(2).mean(1).sqrt().double().numpy())


def check_compatible(synthetic: ImageSet, real: ImageSet) -> None:
    if synthetic.images.shape[1:] != real.images.shape[1:]:
        raise ValueError(f"synthetic images are {synthetic.images.shape[1:]} (H×W×C) but the real images are "
                         f"{real.images.shape[1:]}; generate at the dataset's size and channels")
    if len(real) == 0:
        raise ValueError("the real set is empty")
