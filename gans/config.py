"""GAN training configuration: one dataclass, two presets, and how a config builds its GAN.

`make_config(gan, preset, **overrides)` is the way in: the dataclass defaults are the quick
DCGAN, a preset fills in each GAN's settings, and overrides win. The whole config lands in
the run's config.json, so a run is reproducible from that file alone.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch

from data.datasets import DatasetSpec

# "quick": recognizable DermaMNIST 28 px images in minutes on a 2-core CPU (small widths,
# a couple of thousand steps). "paper": each paper's architecture width, batch size and
# optimizer; step counts sized for MedMNIST-scale datasets.
PRESETS = {
    "quick": {
        "dcgan": dict(latent=32, width=16, batch_size=16, steps=1500, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                      beta2=0.999, d_steps=1, label_smoothing=0.1),
        # WGAN-GP (He-initialised critic): at 1000 steps betas (0.5, 0.9) and lr 2e-4 gave FID 20.9
        # and clearer lesions than the paper's (0, 0.9) at 1e-4 (FID 21.2, blotchier colour).
        "wgan_gp": dict(latent=32, width=16, batch_size=16, steps=1000, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                        beta2=0.9, d_steps=5, label_smoothing=0.0),
        "acgan": dict(latent=64, width=32, batch_size=64, steps=1500, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                      beta2=0.999, d_steps=1, label_smoothing=0.1),
        # SNGAN: width 32, not 16. Over seeds 0, 1, 2 (bench/gan_quality.py) width 16 gave FID 27.8, 29.6,
        # 27.8 and class agreement 0.48, 0.50, 0.39; width 32 gave 12.4, 24.0, 18.8 and 0.60, 0.63, 0.59,
        # for about 1.6x the time. TTUR (lr_g 1e-4, lr_d 4e-4, betas (0, 0.9)) did not beat it (seed 0:
        # 18.2 at width 16, 14.1 at width 32).
        "sngan": dict(latent=32, width=32, batch_size=16, steps=1500, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                      beta2=0.999, d_steps=1, label_smoothing=0.0),
    },
    "paper": {
        # Radford et al. 2016: batch 128, Adam lr 2e-4, beta1 0.5, latent 100, 64-channel base.
        "dcgan": dict(latent=100, width=64, batch_size=128, steps=20000, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                      beta2=0.999, d_steps=1, label_smoothing=0.0),
        # Gulrajani et al. 2017: batch 64, Adam lr 1e-4, betas (0, 0.9), 5 critic steps, λ = 10.
        "wgan_gp": dict(latent=128, width=64, batch_size=64, steps=20000, lr_g=1e-4, lr_d=1e-4, beta1=0.0,
                        beta2=0.9, d_steps=5, label_smoothing=0.0),
        # Odena et al. 2017: batch 100, Adam lr 2e-4, beta1 0.5, latent 110.
        "acgan": dict(latent=110, width=64, batch_size=100, steps=20000, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                      beta2=0.999, d_steps=1, label_smoothing=0.0),
        # Miyato et al. 2018, standard CNN: batch 64, Adam lr 2e-4, betas (0.5, 0.999), n_dis 1, hinge loss.
        "sngan": dict(latent=128, width=64, batch_size=64, steps=20000, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                      beta2=0.999, d_steps=1, label_smoothing=0.0),
    },
}


@dataclass
class GanConfig:
    gan: str = "dcgan"  # a key of gans.REGISTRY
    preset: str = "quick"
    dataset: dict = field(default_factory=lambda: DatasetSpec().to_dict())
    per_class: bool = True  # unconditional GANs: one generator per class, so images carry labels
    train_fraction: float = 1.0  # stratified share of the training split to learn from
    latent: int = 32
    width: int = 16  # channels of the discriminator's first layer / generator's last hidden layer
    batch_size: int = 16  # per model (per class in per-class mode)
    steps: int = 1500  # generator updates
    epochs: float = 0.0  # if > 0, replaces `steps`: passes over the training images
    lr_g: float = 2e-4
    lr_d: float = 2e-4  # a different value gives TTUR (Heusel et al. 2017)
    beta1: float = 0.5
    beta2: float = 0.999
    label_smoothing: float = 0.1  # one-sided: real targets 1 − s (DCGAN, ACGAN; unused by hinge/Wasserstein)
    d_steps: int = 1  # discriminator updates per generator update (5 for WGAN-GP)
    seed: int = 0
    device: str = "auto"  # "auto" = CUDA when present, else CPU
    log_every: int = 25  # steps between loss events (losses are read from the device only then)
    sample_every: int = 250  # steps between sample grids
    checkpoint_every: int = 250  # steps between resumable checkpoints
    export_per_class: int = 200  # images per class in the synthetic set written at the end

    def __post_init__(self):
        from gans import REGISTRY

        if self.gan not in REGISTRY:
            raise ValueError(f"unknown GAN '{self.gan}' (known: {', '.join(REGISTRY)})")
        for name in ("latent", "width", "batch_size", "d_steps", "log_every", "sample_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.steps < 1 and self.epochs <= 0:
            raise ValueError("give steps ≥ 1 or epochs > 0")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

    @property
    def spec(self) -> DatasetSpec:
        return DatasetSpec.from_dict(self.dataset)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GanConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def total_steps(self, num_images: int, num_models: int) -> int:
        """Generator updates to run: `steps`, or enough to see the images `epochs` times."""
        if self.epochs <= 0:
            return int(self.steps)
        per_step = self.batch_size * self.d_steps * num_models
        return max(1, math.ceil(self.epochs * num_images / per_step))


def make_config(gan: str = "dcgan", preset: str = "quick", **overrides) -> GanConfig:
    """A preset's settings for `gan`, with `overrides` on top (unknown names are an error)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}' (known: {', '.join(PRESETS)})")
    unknown = set(overrides) - {f.name for f in fields(GanConfig)}
    if unknown:
        raise ValueError(f"unknown GAN option(s): {', '.join(sorted(unknown))}")
    if isinstance(overrides.get("dataset"), DatasetSpec):
        overrides["dataset"] = overrides["dataset"].to_dict()
    return GanConfig(gan=gan, preset=preset, **{**PRESETS[preset].get(gan, {}), **overrides})


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_gan(config: GanConfig, image_size: int, channels: int, num_classes: int, device="cpu"):
    """The GAN a config describes, for images of the given shape and class count."""
    from gans import REGISTRY

    return REGISTRY[config.gan](
        image_size, channels, num_classes, latent=config.latent, width=config.width, per_class=config.per_class,
        lr_g=config.lr_g, lr_d=config.lr_d, betas=(config.beta1, config.beta2),
        label_smoothing=config.label_smoothing, d_steps=config.d_steps, device=device)
