"""The one trainer every GAN goes through.

`train(config, images, hooks)` keeps the real images on the device as one tensor, draws random
batches from it, and calls the GAN's `train_step`. Through its hooks (data/hooks.py) it reports
the losses and seconds every `log_every` steps (the only time losses leave the device, so steps
never wait on a sync), writes sample grids from fixed noise, keeps a resumable `last.pt` and
resumes from it, and stops cleanly when asked; it fails loudly on exploding losses. What becomes
of the trained GAN (generator file, synthetic set) is the caller's business (lab/kinds/gan.py).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from data.datasets import load_dataset
from data.device import resolve_device
from data.grid import make_grid, save_png
from data.hooks import NO_HOOKS, Hooks, Interrupted
from data.imageset import ImageSet
from data.subset import take_indices
from gans.base import GAN
from gans.checkpoint import load_trusted, save_atomic
from gans.config import GanConfig, build_gan
from gans.sampling import class_grid

GRID_SEED_OFFSET = 1000  # the fixed-noise grid uses seed + this, apart from the training stream
# A mean loss beyond ±this is an explosion, not training (GAN losses stay within a few hundred, WGAN
# critics' within a few thousand): a run whose losses reached 5.8e19 must not end "done".
DIVERGED_LOSS = 1e6


class Diverged(RuntimeError):
    """Losses became NaN, infinite or absurd (|loss| > DIVERGED_LOSS): training cannot recover, the run fails."""


class RealBatches:
    """Random batches of real images from a tensor on the device (the set fits in memory).

    Per-class mode returns, for each draw, `n` images of every class stacked in the channels
    (n × classes·C × H × W), the input layout of a per-class GAN stack; labels are implicit.
    Class-balanced mode (conditional GANs) draws every class equally often, as the generator's
    labels are: on a skewed set (DermaMNIST is two-thirds nevi) the discriminator's class head
    would otherwise learn the majority class as its prior and stop telling the rare ones apart.
    """

    def __init__(self, images: ImageSet, per_class: bool, device: torch.device, balanced: bool = False):
        by_class = per_class or balanced
        if by_class:  # class-sorted, so class k's images are one contiguous block
            images = images.take(np.argsort(images.labels, kind="stable"))
        self.x = images.to_tensor().to(device)
        self.y = torch.from_numpy(images.labels).to(device)
        counts = images.class_counts()
        if by_class and (counts == 0).any():
            empty = [images.class_names[k] for k in np.flatnonzero(counts == 0)]
            mode = "per-class" if per_class else "class-balanced"
            raise ValueError(f"{mode} training needs images of every class; none for: {', '.join(empty)}")
        self.per_class, self.balanced = per_class, balanced
        self.counts = torch.as_tensor(counts, device=device, dtype=torch.float32)
        self.last = torch.as_tensor(counts - 1, device=device)  # float32 rand × count can round up to count
        self.starts = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)[:-1]]), device=device)

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.per_class:
            offsets = torch.minimum((torch.rand(n, len(self.counts), device=self.x.device) * self.counts).long(),
                                    self.last)
            return self.x[self.starts + offsets].flatten(1, 2), None
        if self.balanced:
            classes = torch.randint(len(self.counts), (n,), device=self.x.device)
            offsets = torch.minimum((torch.rand(n, device=self.x.device) * self.counts[classes]).long(),
                                    self.last[classes])
            return self.x[self.starts[classes] + offsets], classes
        index = torch.randint(len(self.x), (n,), device=self.x.device)
        return self.x[index], self.y[index]


def training_images(config: GanConfig) -> ImageSet:
    """The config's share of its dataset's training split: its `train_indices` when it has them (a study's
    seed subset), else the stratified `train_fraction` drawn with its seed."""
    train_split = load_dataset(config.spec).train
    if config.train_indices:
        return take_indices(train_split, config.train_indices)
    return train_split.stratified_subset(config.train_fraction, seed=config.seed)


def train(config: GanConfig, images: ImageSet | None = None, hooks: Hooks = NO_HOOKS) -> GAN:
    """Train `config`'s GAN on `images` (default: `training_images(config)`) and return it.

    With `hooks.checkpoints` set, the state is saved to `last.pt` there every `checkpoint_every`
    steps, at the end and when `hooks.should_stop()` (then Interrupted is raised), and a call
    that finds a `last.pt` continues from it. Sample grids go to `hooks.samples` when set.
    The returned GAN's `steps_done` and `train_seconds` say how long it trained (all calls).
    Raises Diverged when the losses become NaN, infinite or larger than ±DIVERGED_LOSS.
    """
    device = resolve_device(config.device)
    images = images if images is not None else training_images(config)
    torch.manual_seed(config.seed)
    gan = build_gan(config, images.size, images.channels, images.num_classes, device=device)
    batches = RealBatches(images, gan.per_class, device, balanced=gan.conditional)
    total = config.total_steps(len(images), gan.groups)
    last = hooks.checkpoints / "last.pt" if hooks.checkpoints is not None else None
    if last is not None and last.exists():
        restore(last, gan, device)
        hooks.event(type="resume", step=gan.steps_done)
    else:
        hooks.event(type="stage", stage="train", total_steps=total, device=str(device), models=gan.groups,
                    images=len(images))
    started = time.perf_counter() - gan.train_seconds
    pending: list[dict] = []
    while gan.steps_done < total:
        real, labels = batches.draw(config.batch_size * gan.d_steps)
        pending.append(gan.train_step(real, labels))
        gan.steps_done += 1
        gan.train_seconds = time.perf_counter() - started
        step = gan.steps_done
        if step % config.log_every == 0 or step == total:
            losses = mean_losses(pending, step)
            pending.clear()
            hooks.progress(step, total, message=f"{config.gan} step {step}", seconds=round(gan.train_seconds, 2),
                           **losses)
        if hooks.samples is not None and (step % config.sample_every == 0 or step == total):
            save_samples(gan, hooks, config.seed)
        stop = hooks.should_stop()
        if last is not None and (step % config.checkpoint_every == 0 or step == total or stop):
            save_checkpoint(last, gan, config)
        if stop:
            raise Interrupted()
    return gan


def mean_losses(pending: list[dict], step: int) -> dict[str, float]:
    """Average the recent steps' losses (one device sync); raise Diverged on NaN, inf or |loss| > DIVERGED_LOSS."""
    names = list(pending[0])
    values = torch.stack([torch.stack([p[k] for p in pending]) for k in names]).float().mean(1).tolist()
    losses = dict(zip(names, values))
    bad = [k for k, v in losses.items() if not np.isfinite(v) or abs(v) > DIVERGED_LOSS]
    if bad:
        raise Diverged(f"training diverged near step {step}: {', '.join(bad)} became NaN, infinite or "
                       f"beyond ±{DIVERGED_LOSS:g} "
                       f"(try lower learning rates, fewer discriminator steps or a different GAN)")
    return {k: round(v, 5) for k, v in losses.items()}


def save_samples(gan: GAN, hooks: Hooks, seed: int) -> None:
    """A grid from fixed noise (one row per class) as `step_<n>.png` and `latest.png` in hooks.samples."""
    grid = make_grid(class_grid(gan, seed=seed + GRID_SEED_OFFSET), ncol=8)
    path = save_png(grid, hooks.samples / f"step_{gan.steps_done:06d}.png")
    save_png(grid, hooks.samples / "latest.png")
    hooks.event(type="sample", step=gan.steps_done, path=path.name)


def save_checkpoint(path: Path, gan: GAN, config: GanConfig) -> None:
    rng = {"torch": torch.get_rng_state()}
    if gan.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(gan.device)
    save_atomic({"config": config.to_dict(), "step": gan.steps_done, "seconds": gan.train_seconds,
                 "gan": gan.state_dict(), "rng": rng}, path)


def restore(path: Path, gan: GAN, device: torch.device) -> None:
    state = load_trusted(path, device)
    gan.load_state_dict(state["gan"])
    gan.steps_done, gan.train_seconds = int(state["step"]), float(state["seconds"])
    torch.set_rng_state(state["rng"]["torch"].cpu())
    if "cuda" in state["rng"] and device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), device)
