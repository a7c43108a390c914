"""Adversarial losses: named pairs of a discriminator objective and a generator objective.

Each GAN names its pair (`GAN.loss`); anything beyond the pair, such as WGAN-GP's gradient
penalty or ACGAN's class loss, stays in the GAN's own module.

Scores are the discriminator's raw outputs (logits), B × models: one column per model of a
per-class stack (see gans/base.py). Every loss averages over the batch and sums over the stack,
so each stacked model gets exactly the gradient it would get alone.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F


def per_model_mean(values: torch.Tensor) -> torch.Tensor:
    """Average over the batch, sum over the stacked models (B × models -> scalar)."""
    return values.mean(0).sum()


def bce(scores: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of logits against a constant target, per model."""
    loss = F.binary_cross_entropy_with_logits(scores, torch.full_like(scores, target), reduction="none")
    return per_model_mean(loss)


class AdversarialLoss(NamedTuple):
    # (real scores, fake scores, label smoothing s in [0, 1)) -> the discriminator's loss
    discriminator: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    # fake scores -> the generator's loss
    generator: Callable[[torch.Tensor], torch.Tensor]


def bce_discriminator(real: torch.Tensor, fake: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Goodfellow et al. 2014, with one-sided label smoothing (Salimans et al. 2016): real targets 1 − s."""
    return bce(real, 1.0 - smoothing) + bce(fake, 0.0)


def bce_generator(fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating objective: maximize log D(G(z)) rather than minimize log(1 − D(G(z)))."""
    return bce(fake, 1.0)


def hinge_discriminator(real: torch.Tensor, fake: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Lim & Ye 2017, as in Miyato et al. 2018: push real scores above 1 and fake scores below −1."""
    return per_model_mean(F.relu(1 - real)) + per_model_mean(F.relu(1 + fake))


def wasserstein_discriminator(real: torch.Tensor, fake: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Arjovsky et al. 2017: the critic widens E[D(real)] − E[D(fake)]; its Lipschitz bound is the GAN's job."""
    return per_model_mean(fake) - per_model_mean(real)


def raise_score(fake: torch.Tensor) -> torch.Tensor:
    """The generator of the hinge and Wasserstein losses: maximize the (critic's) score of its images."""
    return -per_model_mean(fake)


LOSSES = {
    "bce": AdversarialLoss(bce_discriminator, bce_generator),
    "hinge": AdversarialLoss(hinge_discriminator, raise_score),
    "wasserstein": AdversarialLoss(wasserstein_discriminator, raise_score),
}
