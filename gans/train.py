"""The one trainer every GAN goes through, and the "gan" job.

`train(config, run)` keeps the real images on the device as one tensor, draws random batches
from it, and calls the GAN's `train_step`. With a run it also: logs losses and seconds to
events.jsonl every `log_every` steps (the only time losses leave the device, so steps never
wait on a sync), writes sample grids from fixed noise, saves a resumable `last.pt`, stops
cleanly on cancel, fails loudly on NaN/inf losses, and at the end writes the generator
(`checkpoints/generator.pt`) and a default synthetic set (`artifacts/synthetic.npz`).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from data.datasets import load_dataset
from data.grid import make_grid, save_png
from data.imageset import ImageSet
from data.synthetic import save_set
from gans.checkpoint import load_trusted, save_atomic, save_generator
from gans.config import PRESETS, GanConfig, build_gan, make_config, resolve_device
from gans.sampling import class_grid, has_labels, synthesize
from lab.runs import Cancelled, Run

__all__ = ["GanConfig", "PRESETS", "make_config", "train", "run_job", "Diverged", "RealBatches"]

GRID_SEED_OFFSET = 1000  # the fixed-noise grid uses seed + this, apart from the training stream


class Diverged(RuntimeError):
    """Losses became NaN or infinite: training cannot recover, the run fails."""


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
    train_split = load_dataset(config.spec).train
    return train_split.stratified_subset(config.train_fraction, seed=config.seed)


def train(config: GanConfig, run: Run | None = None, images: ImageSet | None = None):
    """Train `config`'s GAN on `images` (default: the config's dataset) and return it.

    Without a run this is a bare loop (tests, benchmarks); with one it logs, samples,
    checkpoints, resumes from `last.pt`, honours cancel and exports the results.
    """
    device = resolve_device(config.device)
    images = images if images is not None else training_images(config)
    torch.manual_seed(config.seed)
    gan = build_gan(config, images.size, images.channels, images.num_classes, device=device)
    batches = RealBatches(images, gan.per_class, device, balanced=gan.conditional)
    total = config.total_steps(len(images), gan.groups)
    step, seconds_before = 0, 0.0
    last_path = run.checkpoints / "last.pt" if run else None
    if last_path is not None and last_path.exists():
        step, seconds_before = restore(last_path, gan, device)
        run.log_event(type="resume", step=step)
    elif run:
        run.log_event(type="stage", stage="train", total_steps=total, device=str(device),
                      models=gan.groups, images=len(images))
    started = time.perf_counter()
    seconds = lambda: seconds_before + time.perf_counter() - started  # noqa: E731
    pending: list[dict] = []
    while step < total:
        real, labels = batches.draw(config.batch_size * gan.d_steps)
        pending.append(gan.train_step(real, labels))
        step += 1
        if step % config.log_every == 0 or step == total:
            losses = mean_losses(pending, step)
            pending.clear()
            if run:
                run.progress(step, total, message=f"{config.gan} step {step}", seconds=round(seconds(), 2), **losses)
        if run is None:
            continue
        if step % config.sample_every == 0 or step == total:
            save_samples(gan, run, step, config.seed)
        if step % config.checkpoint_every == 0 or run.stop_requested:
            checkpoint(last_path, gan, config, step, seconds())
        if run.stop_requested:
            raise Cancelled()
    if run:
        finish(run, gan, config, images, step, seconds())
    return gan


def mean_losses(pending: list[dict], step: int) -> dict[str, float]:
    """Average the recent steps' losses (one device sync); raise Diverged on NaN/inf."""
    names = list(pending[0])
    values = torch.stack([torch.stack([p[k] for p in pending]) for k in names]).float().mean(1).tolist()
    losses = dict(zip(names, values))
    bad = [k for k, v in losses.items() if not np.isfinite(v)]
    if bad:
        raise Diverged(f"training diverged near step {step}: {', '.join(bad)} became NaN/inf "
                       f"(try lower learning rates, fewer discriminator steps or a different GAN)")
    return {k: round(v, 5) for k, v in losses.items()}


def save_samples(gan, run: Run, step: int, seed: int) -> None:
    grid = make_grid(class_grid(gan, seed=seed + GRID_SEED_OFFSET), ncol=8)
    path = save_png(grid, run.samples / f"step_{step:06d}.png")
    save_png(grid, run.samples / "latest.png")
    run.log_event(type="sample", step=step, path=path.name)


def checkpoint(path, gan, config: GanConfig, step: int, seconds: float) -> None:
    rng = {"torch": torch.get_rng_state()}
    if gan.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(gan.device)
    save_atomic({"config": config.to_dict(), "step": step, "seconds": seconds, "gan": gan.state_dict(),
                 "rng": rng}, path)


def restore(path, gan, device) -> tuple[int, float]:
    state = load_trusted(path, device)
    gan.load_state_dict(state["gan"])
    torch.set_rng_state(state["rng"]["torch"].cpu())
    if "cuda" in state["rng"] and device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), device)
    return int(state["step"]), float(state["seconds"])


def finish(run: Run, gan, config: GanConfig, images: ImageSet, step: int, seconds: float) -> None:
    """Final checkpoint, generator weights with config, and the default synthetic set."""
    checkpoint(run.checkpoints / "last.pt", gan, config, step, seconds)
    save_generator(gan, config, images.class_names, run.checkpoints / "generator.pt")
    run.log_event(type="stage", stage="export", per_class=config.export_per_class)
    synthetic = synthesize(gan, config.export_per_class, images.class_names, seed=config.seed,
                           source=f"{config.gan}:{run.id}")
    save_set(synthetic, run.artifacts, "synthetic", generator=config.gan, run_id=run.id,
             dataset=config.dataset, train_seconds=round(seconds, 1), steps=step,
             labelled=has_labels(gan), preset=config.preset)
    run.log_event(type="done", step=step, seconds=round(seconds, 2))


def run_job(run: Run) -> None:
    """The "gan" job kind: train the GAN described by the run's config.json."""
    train(GanConfig.from_dict(run.config), run)
