"""Per-class GANs of one architecture, one per training subset, trained as one computation.

A study trains its recipe's generator once per seed, on that seed's real subset: ten seeds are ten
GANs of the same architecture and budget that differ only in their images and their seed. A stack
of S members with C classes each is a per-class GAN of S·C models (gans/base.py, grouped layers of
gans/blocks.py) in which member k owns models k·C … k·C + C − 1: the k-th slice along the first
dimension of every weight, buffer and optimizer moment. It trains through gans/train.py unchanged:
its real images are the members' images with class k·C + c for member k's class c (`stack_images`),
so every step draws `batch` images of every class of every member, each member's from its own images
only, and each model gets exactly the gradient it would get alone (the losses are summed over the
stack). `split` then cuts the trained stack into S ordinary per-class GANs that sample, save and
export like any other.

What a member does not share with its own one-GAN run: the random numbers. The stack draws its
initial weights, noise and real batches from one generator seeded with the first member's seed, so a
member is a GAN of the same distribution as its own run, not the same GAN. On a GPU the stack costs
little more than one member; on a CPU grouped convolutions cost what the members cost one after
another (bench/gpu_check.py measures both).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from data.config import Config, ConfigError
from data.hooks import NO_HOOKS, Hooks
from data.imageset import ImageSet
from gans import REGISTRY
from gans.base import GAN
from gans.config import GanConfig, build_gan
from gans.train import train

MEMBER_OWNED = ("seed", "train_indices", "train_fraction", "export_per_class")  # what members may differ in


@dataclass
class GanStackConfig(Config):
    """Per-class GANs that share everything but their training images, seed and export size: what a
    "gan-stack" run needs (a study's recipe generators of several seeds)."""
    members: list[GanConfig] = field(default_factory=list)

    def validate(self) -> None:
        if not self.members:
            raise ConfigError("GanStackConfig.members: a stack needs at least one member")
        first = self.members[0]
        if not stackable(first):
            raise ConfigError(f"GanStackConfig.members: only per-class GANs stack ({first.gan} with per_class="
                              f"{first.per_class} trains one model for every class)")
        shared = [{k: v for k, v in m.to_dict().items() if k not in MEMBER_OWNED} for m in self.members]
        differing = sorted({k for s in shared[1:] for k in s if s[k] != shared[0][k]})
        if differing:
            raise ConfigError(f"GanStackConfig.members: members differ in {', '.join(differing)}; they may differ "
                              f"only in {', '.join(MEMBER_OWNED)}")


def stackable(config: GanConfig) -> bool:
    """Whether GANs of `config` stack: per-class ones do (a conditional GAN is one model for every class)."""
    return config.per_class and not REGISTRY[config.gan].conditional


def stack_images(members: list[ImageSet]) -> ImageSet:
    """The members' images as one set in which member k's class c is class k·C + c (C classes each)."""
    names = members[0].class_names
    if any(m.class_names != names for m in members):
        raise ValueError("stacked members must share their classes")
    labels = np.concatenate([m.labels + k * len(names) for k, m in enumerate(members)])
    return ImageSet(np.concatenate([m.images for m in members]), labels,
                    [f"m{k}:{name}" for k in range(len(members)) for name in names], split="train")


def train_stack(config: GanStackConfig, images: list[ImageSet], hooks: Hooks = NO_HOOKS) -> list[GAN]:
    """Train member k of `config` on `images[k]`, all as one stack (resumable like any GAN through `hooks`);
    return the members as ordinary per-class GANs."""
    members = config.members
    if len(images) != len(members):
        raise ValueError(f"{len(members)} members, {len(images)} image sets")
    if members[0].epochs > 0 and len({len(i) for i in images}) > 1:
        raise ValueError("members trained for epochs must have subsets of one size: their step counts differ")
    stack = train(members[0], stack_images(images), hooks)
    return split(stack, members, images[0].num_classes)


def split(stack: GAN, members: list[GanConfig], num_classes: int) -> list[GAN]:
    """The stack's members as per-class GANs of `num_classes` models each: their weights, batch-norm
    statistics, average generators and optimizer moments, and how long the stack trained."""
    state = stack.state_dict()
    gans = []
    for k, member in enumerate(members):
        gan = build_gan(member, stack.image_size, stack.channels, num_classes, device=stack.device)
        gan.load_state_dict(member_part(state, k, len(members)))
        gan.steps_done, gan.train_seconds = stack.steps_done, stack.train_seconds
        gans.append(gan)
    return gans


def member_part(value, k: int, count: int):
    """Member k's part of a stack's state: every tensor with a dimension holds the `count` members one after
    another along its first (grouped layers put model j's channels in slice j); scalars (step counts) are
    shared."""
    if isinstance(value, torch.Tensor):
        if not value.dim():
            return value.clone()
        if value.shape[0] % count:
            raise ValueError(f"a stack's tensor of shape {tuple(value.shape)} does not hold {count} members")
        return value.chunk(count)[k].clone()
    if isinstance(value, dict):
        return {key: member_part(v, k, count) for key, v in value.items()}
    if isinstance(value, list):
        return [member_part(v, k, count) for v in value]
    return value
