"""The GAN registry: every registered class brings what the pages and the CLI read from it."""
from __future__ import annotations

import pytest
import torch

from gans import PRESET_NAMES, REGISTRY, TITLES
from gans.config import GanConfig, make_config
from gans.losses import LOSSES


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_gan_has_a_title_a_known_loss_and_presets_that_build_valid_configs(name):
    gan = REGISTRY[name]
    assert gan.name == name and TITLES[name] == gan.title and gan.title
    assert gan.loss in LOSSES
    assert set(gan.presets) == set(PRESET_NAMES) == {"quick", "paper"}
    for preset, settings in gan.presets.items():
        config = make_config(name, preset)
        assert all(getattr(config, key) == value for key, value in settings.items()), preset


def test_the_three_losses_push_real_and_fake_scores_apart():
    """Each discriminator loss is lower when real scores are high and fake scores low, and each generator
    loss is lower when the fake scores are high; label smoothing only moves the bce loss."""
    high, low = torch.full((8, 2), 3.0), torch.full((8, 2), -3.0)
    for name, loss in LOSSES.items():
        assert loss.discriminator(high, low, 0.0) < loss.discriminator(low, high, 0.0), name
        assert loss.generator(high) < loss.generator(low), name
        changes = loss.discriminator(high, low, 0.2) != loss.discriminator(high, low, 0.0)
        assert changes == (name == "bce"), name


def test_a_preset_a_gan_lacks_is_refused_naming_the_gan():
    with pytest.raises(ValueError, match="unknown preset 'tiny' for sngan"):
        make_config("sngan", "tiny")
    with pytest.raises(ValueError, match="GanConfig.preset must be one of"):
        GanConfig(preset="tiny")


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_loss_is_a_mean_over_the_batch_and_a_sum_over_a_per_class_stack(name):
    """A stack of 3 identical models has 3 times the loss of one (so each gets the gradient it would
    alone), and repeating the batch leaves the loss as it is."""
    torch.manual_seed(0)
    real, fake = torch.randn(16, 1), torch.randn(16, 1)
    loss = LOSSES[name]
    one_d, one_g = loss.discriminator(real, fake, 0.1), loss.generator(fake)
    assert torch.allclose(loss.discriminator(real.repeat(1, 3), fake.repeat(1, 3), 0.1), 3 * one_d)
    assert torch.allclose(loss.generator(fake.repeat(1, 3)), 3 * one_g)
    assert torch.allclose(loss.discriminator(real.repeat(2, 1), fake.repeat(2, 1), 0.1), one_d)
