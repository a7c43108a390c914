"""Small-data options of every GAN: DiffAugment at the discriminator's input and an EMA generator."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from data.config import ConfigError
from data.hooks import Hooks, Interrupted
from data.synthetic import load_set
from gans import REGISTRY
from gans.checkpoint import load_generator
from gans.config import build_gan, make_config
from gans.diffaugment import DiffAugment, color, cutout, parse_policy, translation
from gans.sampling import synthesize
from gans.train import train
from lab.engine.runs import Run
from lab.kinds import gan as gan_job
from lab.sets import list_sets

ALL = "color,translation,cutout"
TINY = dict(latent=16, width=8, batch_size=8, steps=12, log_every=4, sample_every=6, checkpoint_every=6,
            export_per_class=3, device="cpu", dataset={"name": "pneumoniamnist"})


def images(n: int, channels: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_the_empty_policy_is_the_identity_and_unknown_transforms_are_refused():
    x = images(4, 3)
    assert DiffAugment("", 3)(x) is x
    assert parse_policy(" cutout,color ") == ("color", "cutout")  # any order, the paper's order applied
    with pytest.raises(ConfigError, match="GanConfig.diffaugment: unknown DiffAugment transform.*'colour'"):
        make_config("dcgan", diffaugment="colour,translation")


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", ALL])
def test_every_transform_keeps_the_shape_and_passes_gradients_to_the_input(policy):
    torch.manual_seed(0)
    x = images(16, 3).requires_grad_(True)
    y = DiffAugment(policy, 3)(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    weights = torch.randn_like(y)
    (y * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    moved = (x.grad != 0).flatten(1).float().mean(1)
    assert (moved > 0.3).all(), f"{policy}: some images pass almost no gradient: {moved.min():.2f}"


def test_translation_shifts_each_image_by_at_most_an_eighth_filling_zeros():
    torch.manual_seed(1)
    x = images(32, 1)
    y = translation(x)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    shifts = set()
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                   if torch.equal(y[i], padded[i, :, 4 + dy:32 + dy, 4 + dx:32 + dx])]
        assert len(matches) == 1, f"image {i} is not a shift of its input by at most 4 px"
        shifts.add(matches[0])
    assert len(shifts) > 10  # each image draws its own shift


def test_cutout_zeroes_one_square_of_half_the_side_and_keeps_the_rest():
    torch.manual_seed(2)
    x = images(32, 3).clamp(min=0.01)  # no zeros of its own
    y = cutout(x)
    cut = y == 0
    assert torch.equal(y[~cut], x[~cut])
    assert (cut.all(dim=1) == cut.any(dim=1)).all()  # the same pixels in every channel
    rows, cols = cut[:, 0].any(dim=2).sum(1), cut[:, 0].any(dim=1).sum(1)
    assert (cut[:, 0].flatten(1).sum(1) == rows * cols).all()  # a rectangle: the square clipped by the border
    assert ((rows >= 7) & (rows <= 14) & (cols >= 7) & (cols <= 14)).all()
    assert (rows * cols == 14 * 14).any()


def test_color_on_grayscale_is_brightness_and_contrast_only_and_keeps_rgb_means_within_half():
    """On one channel saturation has nothing to scale: each image maps to a·x + b with contrast
    a in [0.5, 1.5] and brightness up to ±0.5; on RGB only brightness moves an image's mean."""
    torch.manual_seed(3)
    gray = images(64, 1)
    out = color(gray)
    x, y = gray.flatten(1), out.flatten(1)
    xc, yc = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    contrast = (xc * yc).sum(1) / (xc * xc).sum(1)
    assert torch.allclose(yc, contrast[:, None] * xc, atol=1e-5)  # affine per image
    assert ((contrast >= 0.5) & (contrast <= 1.5)).all()
    brightness = y.mean(1) - x.mean(1)
    assert (brightness.abs() <= 0.5 + 1e-6).all() and brightness.std() > 0.1

    rgb = images(64, 3)
    shift = color(rgb).flatten(1).mean(1) - rgb.flatten(1).mean(1)
    assert (shift.abs() <= 0.5 + 1e-6).all() and shift.std() > 0.1


def test_per_class_stacks_transform_each_models_image_alone_and_all_its_channels_alike():
    """B × models·C stacks: the C channels of one model's image move together (the same shift, cut,
    colour), while the models of one sample are transformed independently of each other."""
    torch.manual_seed(4)
    one_model = images(64, 1).repeat(1, 3, 1, 1)  # RGB images whose three channels are equal
    stack = one_model.repeat(1, 4, 1, 1)  # four models, the same image each: 64 × 12 × 28 × 28
    out = DiffAugment(ALL, channels=3)(stack).reshape(64, 4, 3, 28, 28)
    assert torch.allclose(out[:, :, 0], out[:, :, 1]) and torch.allclose(out[:, :, 0], out[:, :, 2])
    same_as_model_0 = (out[:, 1:] - out[:, :1]).flatten(2).abs().amax(2) < 1e-6
    assert same_as_model_0.float().mean() < 0.05


def discriminator_inputs(gan, real, labels) -> list[torch.Tensor]:
    """What the discriminator saw during one train_step: D step (real, fake) and G step (fake)."""
    seen = []
    handle = gan.discriminator.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    try:
        gan.train_step(real, labels)
    finally:
        handle.remove()
    return seen[:2] + seen[-1:]  # WGAN-GP's penalty sees interpolates in between


@pytest.mark.parametrize("gan_name", sorted(REGISTRY))
def test_every_gan_shows_its_discriminator_only_augmented_images_real_and_fake_in_both_steps(gan_name):
    """Cutout on images without zeros: every model image the discriminator sees, in the D step and
    the G step, real or fake, carries a cut-out square of at least 7 × 7 in all its channels."""
    torch.manual_seed(5)
    config = make_config(gan_name, latent=8, width=8, d_steps=1, diffaugment="cutout")
    gan = build_gan(config, 28, 3, 3)
    real = torch.ones(6, gan.groups * 3, 28, 28)
    labels = torch.arange(6) % 3 if gan.conditional else None
    for x in discriminator_inputs(gan, real, labels):
        per_model = x.reshape(6 * gan.groups, 3, 28, 28)
        cut = per_model == 0
        assert (cut.all(dim=1).flatten(1).sum(1) >= 49).all()
        assert torch.equal(cut.all(dim=1), cut.any(dim=1))


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_average_follows_the_trained_generator_with_the_decay_held_low_at_first():
    gan = build_gan(make_config("dcgan", latent=8, width=8, ema=0.9), 28, 1, 2)
    with torch.no_grad():
        for average, trained in zip(gan.generator_ema.state_dict().values(), gan.generator.state_dict().values()):
            average.zero_()
            trained.fill_(1)
    gan.steps_done = 0  # first step: decay min(0.9, 1/10)
    gan.update_ema()
    first = {k: v.clone() for k, v in gan.generator_ema.state_dict().items()}
    gan.steps_done = 1000  # later: the decay itself
    gan.update_ema()
    for name, value in gan.generator_ema.state_dict().items():
        if value.is_floating_point():  # weights and batch-norm statistics alike
            assert torch.allclose(first[name], torch.full_like(value, 0.9)), name
            assert torch.allclose(value, torch.full_like(value, 0.91)), name  # 0.9·0.9 + 0.1·1
        else:  # batch counters are copied
            assert torch.equal(value, gan.generator.state_dict()[name]), name


def test_ema_weights_differ_from_the_trained_ones_and_are_what_samples_exports_and_generator_pt_use(runs_root):
    config = make_config("dcgan", **TINY, ema=0.9)
    run = Run.create("gan", config.to_dict(), root=runs_root)
    gan_job.run(run)
    state = torch.load(run.checkpoints / "last.pt", weights_only=True)["gan"]
    assert not same(state["generator"], state["generator_ema"])
    assert same(torch.load(run.checkpoints / "generator.pt", weights_only=True)["generator"], state["generator_ema"])

    plain = build_gan(make_config("dcgan", **TINY), 28, 1, 2)  # the same architecture without an average
    loaded, _, class_names = load_generator(run.checkpoints / "generator.pt")
    labels = [0, 1] * 8
    plain.generator.load_state_dict(state["generator_ema"])
    assert torch.equal(loaded.sample(16, labels, seed=1), plain.sample(16, labels, seed=1))
    plain.generator.load_state_dict(state["generator"])
    assert not torch.allclose(loaded.sample(16, labels, seed=1), plain.sample(16, labels, seed=1), atol=1e-3)
    [exported] = list_sets(runs_root)
    assert np.array_equal(load_set(exported.path).images, synthesize(loaded, 3, class_names, seed=config.seed).images)


def distance(a: dict, b: dict) -> float:
    return sum(float((a[k] - b[k]).norm()) for k in a if a[k].is_floating_point())


def test_a_trained_gan_draws_its_grids_and_samples_from_the_average_which_followed_training(pneumonia):
    config = make_config("dcgan", **TINY, ema=0.9)
    torch.manual_seed(config.seed)  # as train() does before building the GAN
    initial = weights(build_gan(config, 28, 1, 2).generator)
    trained = train(config, pneumonia.train.stratified_subset(0.05))
    average, raw = weights(trained.generator_ema), weights(trained.generator)
    assert 0 < distance(average, raw) < 0.5 * distance(initial, raw)

    plain = build_gan(make_config("dcgan", **TINY), 28, 1, 2)
    plain.generator.load_state_dict(average)
    labels = [0, 1] * 8
    assert torch.equal(trained.sample(16, labels, seed=2), plain.sample(16, labels, seed=2))


def test_resume_restores_the_ema_generator_and_continues_as_an_uninterrupted_run(tmp_path, pneumonia):
    config = make_config("sngan", **TINY, ema=0.9, diffaugment=ALL)
    subset = pneumonia.train.stratified_subset(0.05)
    straight = train(config, subset)

    with pytest.raises(Interrupted):
        train(config, subset, Hooks(should_stop=lambda: True, checkpoints=tmp_path))
    resumed = train(config, subset, Hooks(checkpoints=tmp_path))
    assert resumed.steps_done == 12
    assert same(weights(resumed.generator_ema), weights(straight.generator_ema))
    assert same(weights(resumed.generator), weights(straight.generator))


def test_without_ema_the_trained_generator_samples_and_no_average_is_kept():
    gan = build_gan(make_config("acgan", latent=8, width=8, ema=0.0), 28, 1, 2)
    assert gan.generator_ema is None and gan.sampling_generator is gan.generator
    assert "generator_ema" not in gan.state_dict()
    assert np.isclose(make_config("dcgan", ema=0.999).ema, 0.999)
