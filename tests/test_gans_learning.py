"""Each GAN takes real training steps on real DermaMNIST images and its samples move toward the data."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gans import REGISTRY
from gans.config import make_config
from gans.train import train

SMALL = dict(latent=32, width=16, batch_size=32, log_every=10, device="cpu")


def statistics_gap(samples: torch.Tensor, real: torch.Tensor) -> float:
    """Distance between image statistics: per-channel 7×7 mean images and per-channel spreads."""
    mean_gap = (F.avg_pool2d(samples, 4).mean(0) - F.avg_pool2d(real, 4).mean(0)).abs().mean()
    std_gap = (samples.std(dim=(0, 2, 3)) - real.std(dim=(0, 2, 3))).abs().mean()
    return float(mean_gap + std_gap)


def gap_before_and_after(config, images) -> tuple[float, float]:
    real = images.to_tensor()[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:512]]
    labels = np.resize(np.arange(images.num_classes), 256)
    untrained = train(replace(config, steps=1, lr_g=0.0, lr_d=0.0), images=images)
    trained = train(config, images=images)
    return statistics_gap(untrained.sample(256, labels, seed=1), real), \
        statistics_gap(trained.sample(256, labels, seed=1), real)


@pytest.mark.parametrize("gan", sorted(REGISTRY))
def test_samples_of_every_gan_move_toward_real_image_statistics(gan, derma):
    steps = 150 if gan == "wgan_gp" else 250
    config = make_config(gan, per_class=False, steps=steps, **SMALL)
    before, after = gap_before_and_after(config, derma.train)
    assert after < 0.4 * before, f"{gan}: statistics gap {before:.3f} -> {after:.3f}"


def test_per_class_generators_each_move_toward_their_own_class(derma):
    """One stacked run, seven generators: every class's samples get closer to that class's real images."""
    images = derma.train
    config = make_config("dcgan", per_class=True, steps=200, **{**SMALL, "batch_size": 8})
    untrained = train(replace(config, steps=1, lr_g=0.0, lr_d=0.0), images=images)
    trained = train(config, images=images)
    for k, name in enumerate(images.class_names):
        real = images.of_class(k).to_tensor()
        before = statistics_gap(untrained.sample(64, [k] * 64, seed=k), real)
        after = statistics_gap(trained.sample(64, [k] * 64, seed=k), real)
        assert after < 0.6 * before, f"{name}: statistics gap {before:.3f} -> {after:.3f}"


def test_training_steps_change_the_losses_and_the_samples(derma):
    config = make_config("dcgan", per_class=False, steps=30, **SMALL)
    a = train(replace(config, steps=1), images=derma.train)
    b = train(config, images=derma.train)
    assert not torch.allclose(a.sample(16, seed=3), b.sample(16, seed=3), atol=1e-3)


def test_wgan_gp_critic_starts_where_the_penalty_wants_it(derma):
    """Without normalisation the critic keeps its initial scale: its input gradient must start near
    the penalty's target norm 1, not at DCGAN-init's ≈0.02 (which costs hundreds of updates)."""
    torch.manual_seed(0)
    gan = REGISTRY["wgan_gp"](28, 3, 7, latent=32, width=16, per_class=True)
    real = derma.train.take(range(16 * 7)).to_tensor().reshape(16, 7 * 3, 28, 28).requires_grad_(True)
    (grad,) = torch.autograd.grad(gan.discriminator(real).sum(), real)
    norms = grad.reshape(16, 7, -1).norm(dim=2)
    assert 0.3 < norms.mean().item() < 3.0, norms.mean().item()
