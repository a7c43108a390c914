"""GAN training configuration: one strict config, and how a config builds its GAN.

`make_config(gan, preset, **overrides)` is the way in: the dataclass defaults are the quick
DCGAN, the GAN's preset (its class's `presets`, gans/<gan>.py) fills in its settings, and
overrides win. Building checks every field (types, ranges, unknown names); the whole config
lands in the run's config.json, so a run is reproducible from that file alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from data.config import MAX_EVERY, MAX_IMAGES_PER_CLASS, Config, ConfigError, option
from data.datasets import DatasetSpec
from data.subset import check_indices
from gans import PRESET_NAMES, REGISTRY
from gans.diffaugment import TRANSFORMS, parse_policy
from gans.gpnn import GpnnConfig, gpnn_config
from gans.singan_train import SinGanConfig, singan_config


@dataclass
class GanConfig(Config):
    gan: str = option("dcgan", label="GAN", choices=tuple(REGISTRY), help="which GAN to train")
    preset: str = option("quick", label="Preset", choices=PRESET_NAMES,
                         help="quick: small networks, recognizable images in minutes on a CPU. "
                              "paper: the papers' widths, batch sizes and optimizers.")
    dataset: dict = option(factory=lambda: DatasetSpec().to_dict(),
                           help="The images to learn from: a DatasetSpec object, e.g. {\"name\": \"pneumoniamnist\"}.")
    per_class: bool = option(True, label="One generator per class",
                             help="Unconditional GANs trained per class produce labelled images (needed for "
                                  "augmentation); ACGAN is conditional by design.")
    train_fraction: float = option(1.0, label="Training fraction", min=0.0, min_exclusive=True, max=1.0, step=0.05,
                                   help="Stratified share of the training split to learn from.")
    train_indices: list[int] = option(factory=list,
                                      help="The training images to learn from, as indices into the training split "
                                           "(a study's seed subset, data/subset.py); empty: the stratified "
                                           "train_fraction drawn with the seed.")
    latent: int = option(32, label="Latent size", min=2, max=512, help="Noise dimensions per generator.")
    width: int = option(16, label="Base width", min=4, max=256,
                        help="Channels of the discriminator's first layer and the generator's last hidden layer.")
    batch_size: int = option(16, label="Batch size", min=2, max=1024,
                             help="Real images per discriminator step, per model (per class in per-class mode).")
    steps: int = option(1500, label="Generator steps", min=1, max=1_000_000, step=100,
                        help="Generator updates (unless epochs is set).")
    epochs: float = option(0.0, label="Epochs (replaces steps when > 0)", min=0.0, max=10_000, step=0.5,
                           help="If > 0: train for this many passes over the training images instead.")
    lr_g: float = option(2e-4, label="Learning rate G", min=0.0, max=0.1, step=1e-5,
                         help="Adam learning rate of the generator.")
    lr_d: float = option(2e-4, label="Learning rate D (≠ G: TTUR)", min=0.0, max=0.1, step=1e-5,
                         help="Adam learning rate of the discriminator; a value other than G's gives TTUR "
                              "(Heusel et al. 2017).")
    beta1: float = option(0.5, label="Adam β1", min=0.0, max=0.999, step=0.05)
    beta2: float = option(0.999, label="Adam β2", min=0.0, max=0.9999, step=1e-4)
    label_smoothing: float = option(0.1, label="One-sided label smoothing", min=0.0, max=0.5, step=0.05,
                                    help="Real targets 1 − s (the bce loss of DCGAN and ACGAN; hinge and "
                                         "Wasserstein losses ignore it).")
    d_steps: int = option(1, label="D steps per G step", min=1, max=10,
                          help="Discriminator updates per generator update (5 for WGAN-GP).")
    diffaugment: str = option("", label="DiffAugment policy",
                              help=f"Differentiable augmentation of real and fake images at the discriminator's "
                                   f"input (Zhao et al. 2020), for small training sets: comma-separated from "
                                   f"{', '.join(TRANSFORMS)}; empty: off.")
    ema: float = option(0.0, label="Generator EMA decay", min=0.0, max=0.9999, step=1e-3,
                        help="Samples, grids and the generator file come from an exponential moving average of "
                             "the generator's weights with this decay per step (e.g. 0.999; held at most "
                             "(1 + t)/(10 + t) at step t, so early steps forget the initial weights); 0: off.")
    seed: int = option(0, label="Seed", min=0, max=2 ** 31 - 1)
    device: str = option("auto", label="Device", choices=("auto", "cpu", "cuda"),
                         help="auto: CUDA when present, else CPU.")
    log_every: int = option(25, min=1, max=MAX_EVERY,
                            help="Steps between loss events (losses leave the device only then).")
    sample_every: int = option(250, min=1, max=MAX_EVERY, help="Steps between sample grids.")
    checkpoint_every: int = option(250, min=1, max=MAX_EVERY, help="Steps between resumable checkpoints.")
    export_per_class: int = option(200, label="Images per class exported at the end", min=0,
                                   max=MAX_IMAGES_PER_CLASS,
                                   help="Size of the synthetic set the run writes when it finishes (0: none).")

    def validate(self) -> None:
        presets = REGISTRY[self.gan].presets
        if self.preset not in presets:
            raise ConfigError(f"GanConfig.preset: {self.gan} has no preset '{self.preset}' "
                              f"(it has: {', '.join(presets)})")
        DatasetSpec.from_dict(self.dataset, where="GanConfig.dataset")
        check_indices("GanConfig.train_indices", self.train_indices)
        try:
            parse_policy(self.diffaugment)
        except ValueError as e:
            raise ConfigError(f"GanConfig.diffaugment: {e}") from None

    @property
    def spec(self) -> DatasetSpec:
        return DatasetSpec.from_dict(self.dataset)

    def total_steps(self, num_images: int, num_models: int) -> int:
        """Generator updates to run: `steps`, or enough to see the images `epochs` times."""
        if self.epochs <= 0:
            return int(self.steps)
        per_step = self.batch_size * self.d_steps * num_models
        return max(1, math.ceil(self.epochs * num_images / per_step))


def make_config(generator: str = "dcgan", preset: str = "quick", **overrides) -> GanConfig | SinGanConfig | GpnnConfig:
    """The config of a generator's job: a GAN of REGISTRY, or the single-image "singan" or "gpnn", from one of
    its presets with `overrides` on top (for the single-image ones, job fields and model settings by name).
    Unknown names and bad values are a ConfigError."""
    if generator == "singan":
        return singan_config(preset, **overrides)
    if generator == "gpnn":
        return gpnn_config(preset, **overrides)
    if generator not in REGISTRY:
        raise ConfigError(f"unknown GAN '{generator}' (known: {', '.join(REGISTRY)})")
    presets = REGISTRY[generator].presets
    if preset not in presets:
        raise ConfigError(f"unknown preset '{preset}' for {generator} (known: {', '.join(presets)})")
    if isinstance(overrides.get("dataset"), DatasetSpec):
        overrides["dataset"] = overrides["dataset"].to_dict()
    return GanConfig.from_dict({"gan": generator, "preset": preset, **presets[preset], **overrides})


def build_gan(config: GanConfig, image_size: int, channels: int, num_classes: int, device="cpu"):
    """The GAN a config describes, for images of the given shape and class count."""
    return REGISTRY[config.gan](
        image_size, channels, num_classes, latent=config.latent, width=config.width, per_class=config.per_class,
        lr_g=config.lr_g, lr_d=config.lr_d, betas=(config.beta1, config.beta2),
        label_smoothing=config.label_smoothing, d_steps=config.d_steps, diffaugment=config.diffaugment,
        ema=config.ema, device=device)
