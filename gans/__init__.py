"""Generators: one module per GAN, one registry.

Adding a GAN is a module plus a line in REGISTRY: its class brings its title, its loss and its
presets, which the pages and the CLI pick up from here.
"""
from gans.acgan import ACGAN
from gans.dcgan import DCGAN
from gans.sngan import SNGAN
from gans.wgan_gp import WGANGP

REGISTRY = {gan.name: gan for gan in (
    DCGAN,
    WGANGP,
    ACGAN,
    SNGAN,
)}

TITLES = {name: gan.title for name, gan in REGISTRY.items()}
PRESET_NAMES = tuple(dict.fromkeys(preset for gan in REGISTRY.values() for preset in gan.presets))

# Single-image generators (one image in, variations out), by job kind: SinGAN learns the image
# (gans/singan.py, gans/singan_train.py), GPNN copies its patches (gans/gpnn.py).
SINGLE_IMAGE = {"singan": "SinGAN", "gpnn": "GPNN"}
