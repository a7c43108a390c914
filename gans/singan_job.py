"""The "singan" job: train a SinGAN on one image, or on k seed images per class of a dataset.

mode="image": one image (a file, or one image of a dataset's training split). Outputs a
generator file, sample grids per level, and variations (`artifacts/variations.npz` and `.png`).

mode="seeds": picks k training images per class (at random with `seed`, or `seed_indices` by
hand), queues one image-mode run per seed (each with its own events, checkpoints and cancel;
free worker slots train them side by side, the seeds run trains the rest itself), collects
`variations` images from each, and registers them as a labelled synthetic set at the dataset's
working size and channels (`artifacts/singan_variations.npz` + `.json` + image-folder `.zip`),
ready for the study's "a fraction of the real data plus SinGAN variations" arm.

Image runs report a progress event per iteration, save `checkpoints/last.pt` every
`checkpoint_every` iterations and on cancel, and resume from it.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from data.datasets import DatasetSpec, load_dataset
from data.grid import make_grid, save_png
from data.imageset import ImageSet, from_tensor, to_tensor
from data.synthetic import load_set, save_set, to_folder_zip
from gans.singan import SinGAN, SinGanSettings, image_to_tensor, load_image, resize
from lab.children import create_children, run_children
from lab.runs import Cancelled, Run, atomic_write_json, read_json

MODES = ("image", "seeds")

# Preset -> model settings. "quick": the concurrent schedule sized for a 2-core CPU: more
# iterations at the cheap coarse levels (global layout), fewer at the fine ones. Its coarsest level
# has a 10-px short side, close to SinGAN's coarse-to-fine ratio (25 px at 250 px), so the first
# stage's 9-px receptive field spans the retina's height; at 16 or 25 px random OCT samples came out
# as fragments of band scattered over the frame. Noise at 0.3 × the reconstruction error gives
# visible speckle (SinGAN's 0.1 left the fine levels almost noise-free). 1000 → 500 iterations take
# about 3.5 minutes at 128 px here and draw the retina's separate layers (at 600 → 250 they were blurred).
# "tiny": 28-px MedMNIST seeds, for the same reason from an 8-px coarsest level (at 14 px random
# chest X-rays came out as scattered lung fragments; at 8 px they have two lungs and a mediastinum),
# with noise at 0.5 × the error so the injected variations differ visibly.
# "paper": SinGAN's original one-level-at-a-time schedule.
PRESETS: dict[str, dict] = {
    "quick": {"iters_coarse": 1000, "iters": 500, "min_side": 10, "noise_amp_init": 0.3},
    "tiny": {"max_side": 28, "stages": 4, "iters_coarse": 400, "iters": 200, "min_side": 8, "noise_amp_init": 0.5},
    "paper": {"max_side": 250, "stages": 9, "iters": 2000, "d_steps": 3, "g_steps": 3, "concurrent": 1,
              "layers": 5, "lr_drop": 0.8},
}


@dataclass
class SinGanConfig:
    mode: str = "image"
    image_path: str = ""  # image mode: an image file (PNG, JPEG, ...)
    dataset: dict | None = None  # a DatasetSpec dict: seeds mode, or image mode with image_index
    image_index: int = -1  # image mode: index into the dataset's training split
    seeds_per_class: int = 2  # seeds mode: k images per class, drawn with `seed`
    seed_indices: list[int] = field(default_factory=list)  # seeds mode: hand-picked training indices
    variations: int = 8  # images generated per trained SinGAN
    inject_stage: int = 1  # k > 0: start at level k from the real image (keeps the layout); 0: from noise
    noise_scale: float = 1.0  # variation strength: multiplies the trained noise amplitudes above level 0
    preset: str = "quick"
    model: SinGanSettings = field(default_factory=SinGanSettings)
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 50  # iterations

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SinGanConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "model"}
        return cls(**known, model=SinGanSettings.from_dict(d.get("model") or {}))

    def validate(self) -> "SinGanConfig":
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got '{self.mode}'")
        if self.mode == "image" and not self.image_path and (self.dataset is None or self.image_index < 0):
            raise ValueError("image mode needs image_path, or dataset and image_index")
        if self.mode == "seeds" and self.dataset is None:
            raise ValueError("seeds mode needs a dataset")
        if self.variations < 1:
            raise ValueError("variations must be at least 1")
        if not 0 <= self.inject_stage < self.model.stages:
            raise ValueError(f"inject_stage must be in 0..{self.model.stages - 1}")
        return self


def make_config(preset: str = "quick", **fields) -> SinGanConfig:
    """A config from a preset; `fields` override job fields and model settings by name."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}' (known: {', '.join(PRESETS)})")
    model_fields = SinGanSettings.__dataclass_fields__
    chosen = {k: v for k, v in fields.items() if k in model_fields}
    if "iters" in chosen:  # an explicit iteration count applies to every level unless coarse is given too
        chosen.setdefault("iters_coarse", 0)
    model = {**PRESETS[preset], **chosen}
    job = {k: v for k, v in fields.items() if k not in model_fields}
    return SinGanConfig(preset=preset, model=SinGanSettings(**model), **job).validate()


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def run_job(run: Run) -> None:
    config = SinGanConfig.from_dict(run.config).validate()
    torch.manual_seed(config.seed)
    if config.mode == "image":
        run_image_job(run, config)
    else:
        run_seeds_job(run, config)


# --- one image ----------------------------------------------------------------------------------

def run_image_job(run: Run, config: SinGanConfig) -> None:
    image, label = source_image(config)
    model = build_model(image, config, config.seed)
    seconds = train(run, model, run.checkpoints / "last.pt", config, offset=0, total=model.total_steps,
                    sample_prefix="stage")
    model.save(run.checkpoints / "singan.pt", training_state=False)
    variations = from_tensor(model.sample(config.variations, seed=config.seed, inject_stage=config.inject_stage,
                                 noise_scale=config.noise_scale))
    np.savez_compressed(run.artifacts / "variations.npz", images=variations, label=np.array(label))
    real = from_tensor(model.reals[-1].cpu())
    save_png(make_grid(np.concatenate([real, variations]), ncol=4), run.artifacts / "variations.png")
    atomic_write_json(run.artifacts / "summary.json", {
        "label": label, "train_seconds": round(seconds, 1), "sizes": model.sizes, "noise_amps": model.amps,
        "reconstruction_rmse": model.reconstruction_error(), "variations": len(variations)})


def source_image(config: SinGanConfig) -> tuple[np.ndarray, str]:
    """The training image (uint8 H×W×C) and a label for it: the file name or the image's class."""
    if config.image_path:
        return load_image(config.image_path), Path(config.image_path).stem
    train_split = load_dataset(DatasetSpec.from_dict(config.dataset)).train
    if not 0 <= config.image_index < len(train_split):
        raise ValueError(f"image_index {config.image_index} is outside the training split (0..{len(train_split) - 1})")
    return train_split.images[config.image_index], train_split.class_names[train_split.labels[config.image_index]]


def build_model(image: np.ndarray, config: SinGanConfig, seed: int) -> SinGAN:
    """A SinGAN for `image`; the finest level never exceeds the image's own long side."""
    settings = SinGanSettings(**{**asdict(config.model), "max_side": min(config.model.max_side, max(image.shape[:2]))})
    return SinGAN(image_to_tensor(image), settings, seed=seed, device=resolve_device(config.device))


def train(run: Run, model: SinGAN, checkpoint: Path, config: SinGanConfig, offset: int, total: int,
          sample_prefix: str) -> float:
    """Train `model` to the end, resuming from `checkpoint`; returns the training seconds.

    Progress counts `offset + steps done` out of `total` so several models can share one bar.
    """
    seconds = 0.0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        seconds = float(state.get("seconds", 0.0))
        run.log_event(type="resume", checkpoint=checkpoint.name, stage=model.stage, iteration=model.iteration)
    levels = len(model.sizes)
    started = time.time() - seconds
    while not model.finished:
        losses = model.step()
        stage, iteration = model.stage, model.iteration
        run.progress(offset + model.steps_done, total, message=f"level {stage + 1}/{levels} iteration {iteration}",
                     stage=stage, iteration=iteration, **losses)
        level_done = model.level_done
        if level_done:
            save_stage_samples(run, model, sample_prefix, time.time() - started)
        if run.stop_requested or level_done or iteration % config.checkpoint_every == 0:
            save_checkpoint(model, checkpoint, time.time() - started)
        if run.stop_requested:
            raise Cancelled()
    return time.time() - started


def save_checkpoint(model: SinGAN, path: Path, seconds: float) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({**model.state_dict(), "seconds": seconds}, tmp)
    tmp.replace(path)


def save_stage_samples(run: Run, model: SinGAN, prefix: str, seconds: float) -> None:
    """A grid of the real image, its reconstruction and 6 random samples at the level just trained."""
    stage = model.stage
    grid = torch.cat([model.reals[stage].cpu(), model.reconstruct().clamp(-1, 1).cpu(), model.sample(6, seed=stage)])
    path = save_png(make_grid(from_tensor(grid), ncol=4), run.samples / f"{prefix}_{stage}.png")
    run.log_event(type="stage", stage=stage, size=list(model.sizes[stage]), noise_amp=model.amps[stage],
                  rec_rmse=model.reconstruction_error(), seconds=round(seconds, 2))
    run.log_event(type="sample", stage=stage, path=str(path))


# --- seeds per class ----------------------------------------------------------------------------

def choose_seeds(train_split: ImageSet, per_class: int, seed: int) -> list[int]:
    """`per_class` random training indices of every class (fewer if a class is smaller)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(train_split.num_classes):
        members = np.flatnonzero(train_split.labels == label)
        chosen += sorted(rng.choice(members, size=min(per_class, len(members)), replace=False).tolist())
    return chosen


def run_seeds_job(run: Run, config: SinGanConfig) -> None:
    """Queue one image-mode "singan" run per seed (lab/children.py), then collect their variations."""
    spec = DatasetSpec.from_dict(config.dataset)
    train_split = load_dataset(spec).train
    seeds = list(config.seed_indices) or choose_seeds(train_split, config.seeds_per_class, config.seed)
    bad = [i for i in seeds if not 0 <= i < len(train_split)]
    if bad:
        raise ValueError(f"seed indices outside the training split (0..{len(train_split) - 1}): {bad}")
    atomic_write_json(run.artifacts / "seeds.json", {"indices": seeds,
                                                     "labels": train_split.labels[seeds].tolist()})
    plan = {f"seed{position:03d}": (f"{spec.name}-seed{position:03d}", seed_config(config, index, position))
            for position, index in enumerate(seeds)}
    children = create_children(run, "singan", plan)
    steps = build_model(train_split.images[seeds[0]], config, config.seed).total_steps
    run_children(run, children, steps, describe=lambda key: f"seed {int(key[4:]) + 1}/{len(seeds)}")

    variations = [read_child_variations(child, spec.size, train_split.channels) for child in children.values()]
    labels = np.concatenate([np.full(len(v), train_split.labels[index]) for v, index in zip(variations, seeds)])
    synthetic = ImageSet(np.concatenate(variations), labels, train_split.class_names,
                         split="synthetic", source=f"singan@{spec.name}")
    train_seconds = sum(read_json(c.artifacts / "summary.json", {}).get("train_seconds", 0) for c in children.values())
    save_set(synthetic, run.artifacts, "singan_variations", generator="singan", run_id=run.id,
             dataset=spec.to_dict(), train_seconds=round(train_seconds, 1), seeds=seeds,
             seed_runs=[c.id for c in children.values()], variations_per_seed=config.variations,
             preset=config.preset)
    (run.artifacts / "singan_variations.zip").write_bytes(to_folder_zip(synthetic))
    reals = train_split.images[seeds]
    rows = [np.concatenate([reals[i:i + 1], v[:7]]) for i, v in enumerate(variations)]
    save_png(make_grid(np.concatenate(rows), ncol=1 + min(7, config.variations)), run.samples / "seeds.png")
    run.log_event(type="synthetic_set", path=str(run.artifacts / "singan_variations.npz"), count=len(synthetic))


def seed_config(config: SinGanConfig, index: int, position: int) -> dict:
    """The image-mode config of one seed's run: the seeds run's settings, a seed of its own."""
    return replace(config, mode="image", image_index=int(index), seed=config.seed + position, seed_indices=[],
                   seeds_per_class=0).to_dict()


def read_child_variations(child: Run, size: int, channels: int) -> np.ndarray:
    with np.load(child.artifacts / "variations.npz", allow_pickle=False) as f:
        images = f["images"]
    return to_working_size(to_tensor(images), size, channels)


def to_working_size(images: torch.Tensor, size: int, channels: int) -> np.ndarray:
    """Generated images resized to the dataset's square working size and channel count, as uint8."""
    images = resize(images, (size, size)).clamp(-1, 1)
    if images.shape[1] != channels:
        images = images.mean(1, keepdim=True) if channels == 1 else images.expand(-1, channels, -1, -1)
    return from_tensor(images)


# --- reading results ----------------------------------------------------------------------------

def load_variations(run: Run) -> ImageSet:
    """A finished run's variations as an ImageSet: the synthetic set (seeds mode) or variations.npz."""
    if run.config.get("mode") == "seeds":
        return load_set(run.artifacts / "singan_variations.npz")
    with np.load(run.artifacts / "variations.npz", allow_pickle=False) as f:
        images, label = f["images"], str(f["label"])
    return ImageSet(images, np.zeros(len(images), np.int64), [label], split="synthetic", source="singan")
