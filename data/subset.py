"""A seed's real subset: the training images one seed of a study learns from, as explicit indices.

A study draws each seed's subset once (`SeedSubset.draw`: the stratified `fraction` of the training
split, drawn with the seed) and hands the same indices to every generator and every classifier of that
seed, in their configs. Nothing downstream draws it again, so a recipe generator and the classifiers
beside it learn from the same images because they were given them, not because two functions happen
to share a rule; fingerprints then only confirm it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.config import MAX_INDEX, ConfigError
from data.imageset import ImageSet


@dataclass(frozen=True)
class SeedSubset:
    fraction: float  # share of each class of the training split, in (0, 1]
    seed: int  # the seed it was drawn with
    indices: tuple[int, ...]  # sorted, distinct indices into the training split

    @classmethod
    def draw(cls, train: ImageSet, fraction: float, seed: int) -> "SeedSubset":
        """The stratified `fraction` of `train` drawn with `seed` (at least one image of every non-empty class)."""
        return cls(fraction, seed, tuple(train.stratified_indices(fraction, seed).tolist()))

    def of(self, train: ImageSet) -> ImageSet:
        """These images of `train`; a ValueError when an index lies outside it (a config made for other data)."""
        return take_indices(train, self.indices)

    def at(self, positions) -> list[int]:
        """Training-split indices of the subset's images at `positions` (positions within the subset)."""
        return [self.indices[p] for p in positions]

    def __len__(self) -> int:
        return len(self.indices)


def take_indices(train: ImageSet, indices) -> ImageSet:
    """The images of `train` at `indices`, refusing an index outside it with a message naming the range."""
    index = np.asarray(indices, dtype=np.int64)
    bad = index[(index < 0) | (index >= len(train))]
    if len(bad):
        raise ValueError(f"{len(bad)} training indices outside the training split of {train.source or 'the dataset'} "
                         f"(0..{len(train) - 1}), e.g. {bad[:3].tolist()}: the config was made for other data")
    return train.take(index)


def check_indices(name: str, indices: list[int]) -> None:
    """Refuse an explicit index list that is not sorted, distinct and non-negative (ConfigError naming `name`)."""
    if len(indices) > MAX_INDEX:
        raise ConfigError(f"{name}: {len(indices)} indices; at most {MAX_INDEX}")
    index = np.asarray(indices, dtype=np.int64)
    if len(index) and (index.min() < 0 or index.max() > MAX_INDEX or np.any(np.diff(index) <= 0)):
        raise ConfigError(f"{name}: give distinct training indices from 0 to {MAX_INDEX} in increasing order")
