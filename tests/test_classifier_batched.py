"""Classifiers trained as one packed computation (classifier/batched.py) against the same classifiers
trained one at a time (classifier/train.py): each member draws exactly its ordinary run's batches,
evaluates at the same steps, ends near the same validation scores, and a group stopped and resumed
ends exactly where an uninterrupted one does.

Agreement is not bit-exact: grouped and plain convolutions sum in different orders, and training
amplifies float32 rounding (AdamW's first steps already turn gradients that are zero but for rounding
into steps of ±lr, so weights are not compared; tests/test_classifier_packed.py shows the packed
network exact in float64). Seen on these members after 24 steps: the same validation accuracy and
balanced accuracy as the ordinary runs at every evaluation; the bound below is 0.05 (on 300 images, 15 of them).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from classifier.batched import Member, train_classifiers
from classifier.train import TrainConfig, train_classifier
from data.augment import apply, build_pipeline, default_pipeline
from data.hooks import Hooks, Interrupted

CONFIG = TrainConfig(steps=24, batch_size=16, eval_every=8)
VAL = 300
CLOSE = 0.05  # validation metrics of a member and its ordinary run, after 24 steps


@pytest.fixture(scope="module")
def group(derma):
    """Three DermaMNIST members unlike each other: plain, balanced sampler + standard augmentation, weighted loss."""
    pipeline = build_pipeline(default_pipeline("dermamnist"))
    augment = lambda images, seed: apply(pipeline, images, seed)
    subsets = [derma.train.stratified_subset(0.03, seed) for seed in (0, 1, 2)]
    return [Member(subsets[0].images, subsets[0].labels, 0),
            Member(subsets[1].images, subsets[1].labels, 1, augment=augment, balance="sampler"),
            Member(subsets[2].images, subsets[2].labels, 2, balance="loss")]


@pytest.fixture(scope="module")
def batched(group, derma):
    return train_classifiers(group, derma.val.images[:VAL], derma.val.labels[:VAL], 7, CONFIG)


@pytest.fixture(scope="module")
def ordinary(group, derma):
    return [train_classifier(m.images, m.labels, derma.val.images[:VAL], derma.val.labels[:VAL], 7,
                             CONFIG.replace(balance=m.balance), seed=m.seed, augment=m.augment) for m in group]


def test_each_member_draws_exactly_the_images_its_ordinary_run_draws(batched, ordinary):
    for together, alone in zip(batched, ordinary):
        assert np.array_equal(together.drawn, alone.drawn)
        assert together.images_seen == alone.images_seen == 24 * 16
    assert not np.array_equal(batched[0].drawn[:50], batched[1].drawn[:50]) or \
        len(batched[0].drawn) != len(batched[1].drawn)


def test_each_member_evaluates_at_the_same_steps_and_ends_near_its_ordinary_run(batched, ordinary):
    for together, alone in zip(batched, ordinary):
        assert [h["step"] for h in together.history] == [h["step"] for h in alone.history] == [8, 16, 24]
        for mine, theirs in zip(together.history, alone.history):
            for metric in ("val_accuracy", "val_balanced_accuracy"):
                assert abs(mine[metric] - theirs[metric]) <= CLOSE, (metric, mine, theirs)
        assert together.best_step == alone.best_step


def test_a_group_stopped_and_resumed_ends_exactly_where_an_uninterrupted_one_does(group, derma, tmp_path, batched):
    val = derma.val.images[:VAL], derma.val.labels[:VAL]
    steps = []

    def stop_after_ten() -> bool:
        return len(steps) >= 10

    hooks = Hooks(progress=lambda done, total, **_: steps.append(done), should_stop=stop_after_ten,
                  checkpoints=tmp_path)
    with pytest.raises(Interrupted):
        train_classifiers(group, *val, 7, CONFIG, hooks=hooks)
    assert (tmp_path / "group.pt").exists() and steps[-1] == 10
    resumed_steps = []
    resumed = train_classifiers(group, *val, 7, CONFIG,
                                hooks=Hooks(progress=lambda done, total, **_: resumed_steps.append(done),
                                            checkpoints=tmp_path))
    assert resumed_steps == list(range(11, 25))  # no step repeated, none skipped
    for mine, uninterrupted in zip(resumed, batched):
        assert np.array_equal(mine.drawn, uninterrupted.drawn)
        assert mine.history == uninterrupted.history and mine.best_step == uninterrupted.best_step
        for a, b in zip(mine.model.state_dict().values(), uninterrupted.model.state_dict().values()):
            assert torch.equal(a, b)


def test_a_checkpoint_of_another_group_is_refused_naming_the_file(group, derma, tmp_path):
    val = derma.val.images[:32], derma.val.labels[:32]
    train_classifiers(group[:2], *val, 7, CONFIG.replace(steps=2, eval_every=2), hooks=Hooks(checkpoints=tmp_path))
    with pytest.raises(ValueError, match="group.pt"):
        train_classifiers(group, *val, 7, CONFIG.replace(steps=4, eval_every=2), hooks=Hooks(checkpoints=tmp_path))


def test_early_stopping_is_refused_rather_than_batched_wrongly(group, derma):
    with pytest.raises(ValueError, match="patience"):
        train_classifiers(group, derma.val.images[:8], derma.val.labels[:8], 7, CONFIG.replace(patience=2))
