"""WGAN-GP (Gulrajani et al. 2017): Wasserstein loss with a gradient penalty.

The critic has no batch norm (the penalty is per sample) and starts from He initialisation
(see `init_he_weights`: under DCGAN's N(0, 0.02) it would start far from the penalty's unit
gradient norm and spend its first hundreds of updates growing), the penalty weight is λ = 10, and
the critic takes `d_steps` = 5 updates per generator update (set by the presets). The paper's
optimizer is Adam with lr 1e-4 and betas (0, 0.9).
"""
from __future__ import annotations

from gans.base import GAN, per_model_mean
from gans.blocks import Discriminator, Generator, gradient_penalty, init_he_weights

PENALTY_WEIGHT = 10.0


class WGANGP(GAN):
    name = "wgan_gp"

    def build_generator(self):
        return Generator(self.image_size, self.channels, self.latent, self.width, self.groups)

    def build_discriminator(self):
        critic = Discriminator(self.image_size, self.channels, self.width, norm="none", groups=self.groups)
        init_he_weights(critic)
        return critic

    def d_loss(self, real, labels, fake, fake_labels):
        wasserstein = per_model_mean(self.discriminator(fake)) - per_model_mean(self.discriminator(real))
        return wasserstein + PENALTY_WEIGHT * gradient_penalty(self.discriminator, real, fake, groups=self.groups)

    def g_loss(self, fake, fake_labels):
        return -per_model_mean(self.discriminator(fake))
