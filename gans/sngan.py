"""SNGAN (Miyato et al. 2018): spectral normalization in every discriminator layer.

The discriminator has no batch norm; each convolution's weight is divided by its spectral
norm, which bounds the discriminator's Lipschitz constant. Trained with the hinge loss the
paper reports its best results with.
"""
from __future__ import annotations

from gans.base import GAN
from gans.blocks import Discriminator, Generator


class SNGAN(GAN):
    name = "sngan"
    title = "SNGAN"
    loss = "hinge"
    presets = {
        # Width 32, not 16. Over seeds 0, 1, 2 (bench/gan_quality.py) width 16 gave FID 27.8, 29.6, 27.8 and
        # class agreement 0.48, 0.50, 0.39; width 32 gave 12.4, 24.0, 18.8 and 0.60, 0.63, 0.59, for about
        # 1.6x the time. TTUR (lr_g 1e-4, lr_d 4e-4, betas (0, 0.9)) did not beat it (seed 0: 18.2 at
        # width 16, 14.1 at width 32). EMA 0.999: FID lower in both feature spaces on full DermaMNIST
        # (Inception 278.8 -> 234.9, 3 of 3 seeds) and in the encoder's on 10% of PneumoniaMNIST (README).
        "quick": dict(latent=32, width=32, batch_size=16, steps=1500, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                      beta2=0.999, d_steps=1, label_smoothing=0.0, ema=0.999),
        # Miyato et al. 2018, standard CNN: batch 64, Adam lr 2e-4, betas (0.5, 0.999), n_dis 1, hinge loss.
        "paper": dict(latent=128, width=64, batch_size=64, steps=20000, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                      beta2=0.999, d_steps=1, label_smoothing=0.0),
    }

    def build_generator(self):
        return Generator(self.image_size, self.channels, self.latent, self.width, self.groups)

    def build_discriminator(self):
        return Discriminator(self.image_size, self.channels, self.width, norm="spectral", groups=self.groups)
