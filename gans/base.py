"""The interface every GAN shares, and the training step they have in common.

A GAN owns a generator, a discriminator and their Adam optimizers. A subclass says how to
build the two networks, names its adversarial loss (a key of gans.losses.LOSSES; it overrides
`d_loss`/`g_loss` only to add to it) and brings its title and presets; `train_step` runs
`d_steps` discriminator updates and one generator update, as the papers do.

Presets are settings of `GanConfig` (gans/config.py). Every GAN has two: "quick", recognizable
DermaMNIST 28 px images in minutes on a 2-core CPU (small widths, a couple of thousand steps),
and "paper", the paper's architecture width, batch size and optimizer, with step counts sized
for MedMNIST-scale datasets.

Two options help on small data (gans/diffaugment.py and `update_ema`): DiffAugment transforms
real and fake images alike at the discriminator's input, in both steps; an exponential moving
average of the generator's weights (Yazıcı et al. 2019) is what samples, grids and generator
files come from when `ema` > 0, while the optimizer keeps training the raw generator.

Unconditional GANs can be stacked per class (`per_class=True`): one independent
generator/discriminator pair per class, run as one grouped network (see gans/blocks.py).
Their real batches then hold `batch` images of every class side by side in the channels
(B × classes·C × H × W), and each model's loss is averaged over the batch and summed over
the stack, so every model gets exactly the gradient it would get alone.
"""
from __future__ import annotations

import copy
from typing import Iterator

import torch
from torch import nn

from gans.diffaugment import DiffAugment
from gans.losses import LOSSES

EMA_WARMUP = 10  # the average's decay is at most (1 + t) / (EMA_WARMUP + t) at step t


class GAN:
    name = ""  # the registry key (gans/__init__.py)
    title = ""  # how pages and reports name it
    loss = ""  # its adversarial loss: a key of gans.losses.LOSSES
    conditional = False  # generator takes class labels (ACGAN)
    presets: dict[str, dict] = {}  # preset name -> GanConfig settings

    def __init__(self, image_size: int, channels: int, num_classes: int, *, latent: int = 100, width: int = 64,
                 per_class: bool = False, lr_g: float = 2e-4, lr_d: float = 2e-4,
                 betas: tuple[float, float] = (0.5, 0.999), label_smoothing: float = 0.0, d_steps: int = 1,
                 diffaugment: str = "", ema: float = 0.0, device: str | torch.device = "cpu"):
        self.image_size, self.channels, self.num_classes = image_size, channels, num_classes
        self.latent, self.width, self.label_smoothing = latent, width, label_smoothing
        self.d_steps = d_steps
        self.groups = num_classes if per_class and not self.conditional else 1
        self.device = torch.device(device)
        self.generator = self.build_generator().to(self.device)
        self.discriminator = self.build_discriminator().to(self.device)
        self.augment = DiffAugment(diffaugment, channels)
        self.ema = ema
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if ema > 0 else None
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr_g, betas=tuple(betas))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr_d, betas=tuple(betas))
        self.steps_done, self.train_seconds = 0, 0.0  # how far training got (kept by gans/train.py)

    # --- what a subclass defines (it overrides the losses only to add to its named loss) ------
    def build_generator(self) -> nn.Module:
        raise NotImplementedError

    def build_discriminator(self) -> nn.Module:
        raise NotImplementedError

    def d_loss(self, real: torch.Tensor, labels, fake: torch.Tensor, fake_labels) -> torch.Tensor:
        real_scores, fake_scores = self.discriminator(real), self.discriminator(fake)
        return LOSSES[self.loss].discriminator(real_scores, fake_scores, self.label_smoothing)

    def g_loss(self, fake: torch.Tensor, fake_labels) -> torch.Tensor:
        return LOSSES[self.loss].generator(self.discriminator(fake))

    def scores(self, images: torch.Tensor, labels) -> torch.Tensor:
        """The discriminator's realness score of each image (a logit for the logit losses)."""
        return self.discriminator(images)

    # --- shared -------------------------------------------------------------------------------
    @property
    def per_class(self) -> bool:
        return self.groups > 1

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.groups * self.latent, device=self.device, generator=generator)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator images come from: the weights' moving average when `ema` > 0, else the trained one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None,
                 generator: nn.Module | None = None) -> torch.Tensor:
        """`generator`'s images (default: the trained generator) for noise z and, if conditional, labels."""
        generator = self.generator if generator is None else generator
        return generator(z, labels) if self.conditional else generator(z)

    def train_step(self, real: torch.Tensor, labels: torch.Tensor | None,
                   inspect: bool = False) -> dict[str, torch.Tensor]:
        """`d_steps` discriminator updates (one real chunk each), then one generator update.

        `real` holds d_steps · batch images. The generator step reuses the last fake batch
        (as the PyTorch DCGAN example does). The discriminator sees every image, real or fake,
        through `augment`; the average generator follows each update. Returns detached loss
        tensors, per model: the trainer reads them every few steps, so no step waits for the device.
        With `inspect` (the step-by-step view), also what the last discriminator update saw before it
        learned: `d_real` and `d_fake`, the mean sigmoid of its scores of the real and the fake batch
        (its belief that each is real, for the logit losses), and the L2 norms of both updates'
        gradients, `grad_d` and `grad_g`.
        """
        seen = {}
        chunks = real.chunk(self.d_steps)
        label_chunks = labels.chunk(self.d_steps) if labels is not None else [None] * len(chunks)
        for i, (chunk, chunk_labels) in enumerate(zip(chunks, label_chunks)):
            last = i == len(chunks) - 1
            fake_labels = self.random_labels(len(chunk))
            with torch.set_grad_enabled(last):  # only the last fake batch feeds the generator step
                fake = self.generate(self.noise(len(chunk)), fake_labels)
            real_in, fake_in = self.augment(chunk), self.augment(fake.detach())
            if inspect and last:
                seen.update(self._beliefs(real_in, chunk_labels, fake_in, fake_labels))
            loss_d = self.d_loss(real_in, chunk_labels, fake_in, fake_labels)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            if inspect and last:
                seen["grad_d"] = gradient_norm(self.discriminator)
            self.opt_d.step()
        loss_g = self.g_loss(self.augment(fake), fake_labels)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if inspect:
            seen["grad_g"] = gradient_norm(self.generator)
        self.opt_g.step()
        if self.generator_ema is not None:
            self.update_ema()
        return {"loss_d": loss_d.detach() / self.groups, "loss_g": loss_g.detach() / self.groups, **seen}

    @torch.no_grad()
    def _beliefs(self, real: torch.Tensor, labels, fake: torch.Tensor, fake_labels) -> dict[str, torch.Tensor]:
        """The discriminator's mean belief (sigmoid of its score) that the real and the fake batch are real."""
        real_scores, fake_scores = self.scores(real, labels), self.scores(fake, fake_labels)
        return {"d_real": torch.sigmoid(real_scores).mean(), "d_fake": torch.sigmoid(fake_scores).mean()}

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the average generator towards the trained one: w ← d·w + (1 − d)·w_trained.

        The decay d is `ema`, held lower during the first steps, (1 + t) / (EMA_WARMUP + t) at step t,
        so the average forgets the random initial weights quickly. Batch-norm statistics are
        averaged the same way, so they match the averaged weights.
        """
        t = self.steps_done
        decay = min(self.ema, (1 + t) / (EMA_WARMUP + t))
        trained = self.generator.state_dict()
        for name, average in self.generator_ema.state_dict().items():
            if average.is_floating_point():
                average.lerp_(trained[name], 1 - decay)
            else:
                average.copy_(trained[name])

    def random_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        if not self.conditional:
            return None
        return torch.randint(self.num_classes, (n,), device=self.device, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, labels=None, seed: int | None = None, batch: int = 256) -> torch.Tensor:
        """n images in [-1, 1] (N × C × H × W, on the CPU) from the generator in eval mode.

        `labels` picks each image's class (the conditioning label, or which per-class
        generator draws it; random when omitted); a `seed` makes the draw reproducible.
        """
        parts = list(self.sample_batches(n, labels, seed, batch))
        return torch.cat(parts) if parts else torch.empty(0, self.channels, self.image_size, self.image_size)

    def sample_batches(self, n: int, labels=None, seed: int | None = None, batch: int = 256) -> Iterator[torch.Tensor]:
        """The images of `sample(n, labels, seed)`, `batch` at a time (for sets too large to hold as floats)."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int(seed) if seed is not None else int(torch.randint(2 ** 62, ()).item()))
        if labels is None:
            labels = torch.randint(self.num_classes, (n,), generator=generator, device=self.device)
        labels = torch.as_tensor(labels, dtype=torch.long, device=self.device).reshape(-1)
        if len(labels) != n or (n and (labels.min() < 0 or labels.max() >= self.num_classes)):
            raise ValueError(f"need {n} labels in 0..{self.num_classes - 1}")
        for chunk in labels.split(batch):
            yield self.decode(self.noise(len(chunk), generator), chunk)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Generator output for noise `z` in eval mode, one image per label, on the CPU.

        For a per-class stack the label picks which class's generator each image comes from;
        an unconditional GAN trained on the whole dataset ignores the labels.
        """
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        try:
            images = self.generate(z, labels if self.conditional else None, generator)
        finally:
            generator.train(was_training)
        if self.per_class:
            images = images.view(len(z), self.groups, self.channels, *images.shape[2:])
            images = images[torch.arange(len(z), device=self.device), labels]
        return images.float().cpu()

    # --- persistence ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}
        if self.generator_ema is not None:
            state["generator_ema"] = self.generator_ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.generator_ema is not None:
            self.generator_ema.load_state_dict(state["generator_ema"])


def gradient_norm(module: nn.Module) -> torch.Tensor:
    """The L2 norm of all of `module`'s gradients together (0 when it has none)."""
    grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
    return torch.cat(grads).norm() if grads else torch.zeros(())
