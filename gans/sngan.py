"""SNGAN (Miyato et al. 2018): spectral normalization in every discriminator layer.

The discriminator has no batch norm; each convolution's weight is divided by its spectral
norm, which bounds the discriminator's Lipschitz constant. Trained with the hinge loss the
paper reports its best results with.
"""
from __future__ import annotations

import torch.nn.functional as F

from gans.base import GAN, per_model_mean
from gans.blocks import Discriminator, Generator


class SNGAN(GAN):
    name = "sngan"

    def build_generator(self):
        return Generator(self.image_size, self.channels, self.latent, self.width, self.groups)

    def build_discriminator(self):
        return Discriminator(self.image_size, self.channels, self.width, norm="spectral", groups=self.groups)

    def d_loss(self, real, labels, fake, fake_labels):
        return per_model_mean(F.relu(1 - self.discriminator(real))) + per_model_mean(F.relu(1 + self.discriminator(fake)))

    def g_loss(self, fake, fake_labels):
        return -per_model_mean(self.discriminator(fake))
