"""Training a SinGAN: the presets, the config of a SinGAN job, and the training loop.

SinGAN keeps a loop of its own instead of going through `gans/train.py`. That trainer draws
batches from a dataset for a fixed number of steps of a model whose shape never changes; a SinGAN
learns one image with a pyramid that grows while it trains: the model itself opens each level,
sets its noise amplitude from the level below and rebuilds its optimisers, several levels train
concurrently, and each level has its own number of iterations. What the two loops share is the
reporting convention: a cheap progress update every step, a progress event with the losses
every `log_every` steps (their mean over those steps, the only time losses leave the device), a
sample grid per level in `hooks.samples`, a resumable `last.pt` in `hooks.checkpoints`, and on
`hooks.should_stop()` a saved checkpoint, then `Interrupted`.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from data.config import MAX_EVERY, MAX_SEED, ConfigError, option
from data.device import resolve_device
from data.files import atomic_save
from data.grid import make_grid, save_png
from data.hooks import NO_HOOKS, Hooks, Interrupted
from data.imageset import from_tensor, to_tensor
from gans.singan import STATE_ERRORS, SinGAN, SinGanSettings, read_state
from gans.single_image import SingleImageJob


# Preset -> model settings. "quick": the concurrent schedule sized for a 2-core CPU: more
# iterations at the cheap coarse levels (global layout), fewer at the fine ones. Its coarsest level
# has a 10-px short side, close to SinGAN's coarse-to-fine ratio (25 px at 250 px), so the first
# stage's 9-px receptive field spans the retina's height; at 16 or 25 px random OCT samples came out
# as fragments of band scattered over the frame. Noise at 0.3 × the reconstruction error gives
# visible speckle (SinGAN's 0.1 left the fine levels almost noise-free). 1000 → 500 iterations take
# about 3.5 minutes at 128 px here and draw the retina's separate layers (at 600 → 250 they were blurred).
# "tiny": 28-px MedMNIST seeds, from a 12-px coarsest level, generated from noise (`PRESET_JOB`).
# With an 8-px coarsest level the first stage's 9-px receptive field saw the whole image and learned
# it by heart: injected at level 1 (the former default) the variations of 3 PneumoniaMNIST and 3
# DermaMNIST seeds differed from their seed by 4.5/255 and from each other by 2.8/255 (two real
# images of a class: 36.5/255), near copies; larger noise (noise_amp_init 1.0, or ×4 when sampling)
# only added speckle. At 12 px, from noise, the layout itself varies while chest X-rays keep two
# lungs: 10.1/255 from the seed, 10.8/255 between variations (at 14 px they came out as scattered
# lung fragments). Measured as in the README ("Variations that vary").
# "paper": SinGAN's original one-level-at-a-time schedule.
PRESETS: dict[str, dict] = {
    "quick": {"iters_coarse": 1000, "iters": 500, "min_side": 10, "noise_amp_init": 0.3},
    "tiny": {"max_side": 28, "stages": 4, "iters_coarse": 400, "iters": 200, "min_side": 12, "noise_amp_init": 0.5},
    "paper": {"max_side": 250, "stages": 9, "iters": 2000, "d_steps": 3, "g_steps": 3, "concurrent": 1,
              "layers": 5, "lr_drop": 0.8},
}
PRESET_JOB: dict[str, dict] = {"tiny": {"inject_stage": 0}}  # a preset's job defaults (fields still override them)


@dataclass(frozen=True)
class SinGanConfig(SingleImageJob):
    """A SinGAN job: one image → variations ("image"), or k seed images per class → a labelled set ("seeds")."""

    inject_stage: int = option(1, label="Injection level", min=0, max=31,
                               help="k > 0: start at level k from the real image (keeps its layout); 0: from noise")
    noise_scale: float = option(1.0, label="Variation strength", min=0,
                                help="multiplies the trained noise amplitudes above level 0 (5-10: visible texture)")
    preset: str = option("quick", label="Preset", choices=tuple(PRESETS),
                         help="quick: concurrent levels for a CPU; tiny: 28-px images; paper: SinGAN's original "
                              "schedule (hours on a CPU)")
    model: SinGanSettings = field(default_factory=SinGanSettings)
    seed: int = option(0, label="Seed", min=0, max=MAX_SEED)
    device: str = option("auto", label="Device", help="auto: CUDA when present, else CPU")
    checkpoint_every: int = option(50, label="Checkpoint every", min=1, max=MAX_EVERY,
                                   help="iterations of a level between resumable checkpoints")
    log_every: int = option(25, label="Log every", min=1, max=MAX_EVERY,
                            help="iterations between loss events (losses are read from the device only then)")
    sifid: bool = option(True, label="SIFID",
                         help="image mode: score the variations' SIFID against the image (loads Inception)")

    def validate(self) -> None:
        super().validate()
        if self.inject_stage >= self.model.stages:
            raise ConfigError(f"SinGanConfig.inject_stage must be in 0..{self.model.stages - 1} "
                              f"(the model has {self.model.stages} levels); got {self.inject_stage}")


def singan_config(preset: str = "quick", **fields) -> SinGanConfig:
    """A config from a preset (its model settings and job defaults); `fields` override job fields and
    model settings by name."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}' (known: {', '.join(PRESETS)})")
    model_fields = {f.name for f in dataclasses.fields(SinGanSettings)}
    chosen = {k: v for k, v in fields.items() if k in model_fields}
    if "iters" in chosen:  # an explicit iteration count applies to every level unless coarse is given too
        chosen.setdefault("iters_coarse", 0)
    job = {k: v for k, v in fields.items() if k not in model_fields}
    return SinGanConfig.from_dict({**PRESET_JOB.get(preset, {}), **job, "preset": preset,
                                   "model": {**PRESETS[preset], **chosen}})


def build_model(image: np.ndarray, config: SinGanConfig) -> SinGAN:
    """A SinGAN for `image` (uint8 H×W×C); the finest level never exceeds the image's own long side."""
    settings = config.model.replace(max_side=min(config.model.max_side, max(image.shape[:2])))
    return SinGAN(to_tensor(image[None]), settings, seed=config.seed, device=resolve_device(config.device))


# --- the loop -----------------------------------------------------------------------------------

def train(model: SinGAN, hooks: Hooks = NO_HOOKS, checkpoint_every: int = 50, log_every: int = 25) -> float:
    """Train `model` to the end; returns the training seconds, those before a resume included.

    With `hooks.checkpoints` it resumes from `last.pt` there and saves it every `checkpoint_every`
    iterations of a level, at the end of each level, and when `hooks.should_stop()` (then it
    raises `Interrupted`). Progress counts iterations over all levels; a "progress" event carries
    the level, the iteration and the mean losses since the previous one, every `log_every`
    iterations, at the end of each level and on stop. Each finished level gets a "stage" event
    and, with `hooks.samples`, a grid `stage_<level>.png`.
    """
    checkpoint = hooks.checkpoints / "last.pt" if hooks.checkpoints is not None else None
    seconds_before = 0.0
    if checkpoint is not None and checkpoint.exists():
        seconds_before = resume(model, checkpoint)
        hooks.event(type="resume", checkpoint=checkpoint.name, stage=model.stage, iteration=model.iteration)
    started = time.perf_counter()

    def seconds() -> float:
        return seconds_before + time.perf_counter() - started

    levels, total = len(model.sizes), model.total_steps
    pending: list[dict[str, torch.Tensor]] = []  # the losses of the steps since the last event
    while not model.finished:
        pending.append(model.step())
        done, stage, iteration, level_done = model.steps_done, model.stage, model.iteration, model.level_done
        stopping = hooks.should_stop()
        message = f"level {stage + 1}/{levels} iteration {iteration}"
        if done % log_every == 0 or level_done or stopping:
            hooks.progress(done, total, message, stage=stage, iteration=iteration, **mean_losses(pending))
            pending.clear()
        else:
            hooks.progress(done, total, message)
        if level_done:
            report_level(model, hooks, seconds())
        if checkpoint is not None and (stopping or level_done or iteration % checkpoint_every == 0):
            save_checkpoint(model, checkpoint, seconds())
        if stopping:
            raise Interrupted()
    return seconds()


def mean_losses(pending: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Each loss averaged over the given steps, read from the device in one transfer."""
    names = list(pending[0])
    means = torch.stack([torch.stack([losses[name] for losses in pending]) for name in names]).float().mean(1)
    return dict(zip(names, means.tolist()))


def report_level(model: SinGAN, hooks: Hooks, seconds: float) -> None:
    """The level just trained: a "stage" event, and a grid of the real image, its reconstruction
    and 6 random samples at that level (with a "sample" event) when there is a samples folder."""
    stage = model.stage
    hooks.event(type="stage", stage=stage, size=list(model.sizes[stage]), noise_amp=model.amps[stage],
                rec_rmse=model.reconstruction_error(), seconds=round(seconds, 2))
    if hooks.samples is None:
        return
    grid = torch.cat([model.reals[stage].cpu(), model.reconstruct().clamp(-1, 1).cpu(), model.sample(6, seed=stage)])
    path = save_png(make_grid(from_tensor(grid), ncol=4, marked=[0]), hooks.samples / f"stage_{stage}.png")
    hooks.event(type="sample", stage=stage, path=str(path))


def save_checkpoint(model: SinGAN, path: Path, seconds: float) -> None:
    atomic_save(path, lambda tmp: torch.save({**model.state_dict(), "seconds": seconds}, tmp))


def resume(model: SinGAN, path: Path) -> float:
    """Load the training state in `path` into `model`; returns the seconds it had trained."""
    state = read_state(path)
    try:
        model.load_state_dict(state)
        return float(state.get("seconds", 0.0))
    except STATE_ERRORS as e:
        raise ValueError(f"{path}: not a SinGAN training state this model can resume from: {e}") from None
