"""DCGAN (Radford, Metz & Chintala 2016).

Transposed-convolution generator with batch norm and ReLU (tanh output); strided-convolution
discriminator with batch norm and LeakyReLU 0.2; the standard GAN loss with the
non-saturating generator objective, and optional one-sided label smoothing (Salimans et al.
2016: real targets 1 − s, fake targets 0).
"""
from __future__ import annotations

from gans.base import GAN
from gans.blocks import Discriminator, Generator


class DCGAN(GAN):
    name = "dcgan"
    title = "DCGAN"
    loss = "bce"
    presets = {
        "quick": dict(latent=32, width=16, batch_size=16, steps=1500, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                      beta2=0.999, d_steps=1, label_smoothing=0.1),
        # Radford et al. 2016: batch 128, Adam lr 2e-4, beta1 0.5, latent 100, 64-channel base.
        "paper": dict(latent=100, width=64, batch_size=128, steps=20000, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                      beta2=0.999, d_steps=1, label_smoothing=0.0),
    }

    def build_generator(self):
        return Generator(self.image_size, self.channels, self.latent, self.width, self.groups)

    def build_discriminator(self):
        return Discriminator(self.image_size, self.channels, self.width, norm="batch", groups=self.groups)
