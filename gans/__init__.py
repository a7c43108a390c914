"""Generators: one module per GAN, one registry. Adding a GAN is a module plus a line here."""
from gans.acgan import ACGAN
from gans.dcgan import DCGAN
from gans.sngan import SNGAN
from gans.wgan_gp import WGANGP

REGISTRY = {cls.name: cls for cls in (DCGAN, WGANGP, ACGAN, SNGAN)}

TITLES = {"dcgan": "DCGAN", "wgan_gp": "WGAN-GP", "acgan": "ACGAN (conditional)", "sngan": "SNGAN"}
