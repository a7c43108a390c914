"""DCGAN (Radford, Metz & Chintala 2016).

Transposed-convolution generator with batch norm and ReLU (tanh output); strided-convolution
discriminator with batch norm and LeakyReLU 0.2; the standard GAN loss with the
non-saturating generator objective, and optional one-sided label smoothing (Salimans et al.
2016: real targets 1 − s, fake targets 0).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gans.base import GAN, per_model_mean
from gans.blocks import Discriminator, Generator


class DCGAN(GAN):
    name = "dcgan"
    discriminator_norm = "batch"

    def build_generator(self):
        return Generator(self.image_size, self.channels, self.latent, self.width, self.groups)

    def build_discriminator(self):
        return Discriminator(self.image_size, self.channels, self.width, self.discriminator_norm, self.groups)

    def d_loss(self, real, labels, fake, fake_labels):
        real_scores, fake_scores = self.discriminator(real), self.discriminator(fake)
        return bce(real_scores, 1.0 - self.label_smoothing) + bce(fake_scores, 0.0)

    def g_loss(self, fake, fake_labels):
        return bce(self.discriminator(fake), 1.0)


def bce(scores: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of logits against a constant target, per model."""
    loss = F.binary_cross_entropy_with_logits(scores, torch.full_like(scores, target), reduction="none")
    return per_model_mean(loss)
