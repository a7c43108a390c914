"""The "singan" job: train a SinGAN on one image, or on k seed images per class of a dataset.

mode="image": one image (a file, or one image of a dataset's training split). Writes the
generator (`checkpoints/singan.pt`), a sample grid per level (`samples/stage_<k>.png`), the
variations (`artifacts/variations.npz` and `.png`) and `artifacts/summary.json` (with how much
the variations vary and, unless `sifid` is off, their SIFID: `image_figures`).

mode="seeds": picks k training images per class (at random with `seed`, or `seed_indices` by
hand), queues one image-mode run per seed (each with its own events, checkpoints and cancel;
free worker slots train them side by side, the seeds run trains the rest itself), collects
`variations` images from each, and registers them as a labelled synthetic set at the dataset's
working size and channels (`artifacts/singan_variations.npz` + `.json` + image-folder `.zip`),
ready for the study's "a fraction of the real data plus SinGAN variations" arm.

The pieces every single-image job shares (the source image, the seeds, the figures, the seeds'
synthetic set) are here too; the "gpnn" job (lab/kinds/gpnn.py) uses them.
`load_variations(run)` reads a finished run of either kind back.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from data.config import Config
from data.datasets import DatasetSpec, load_dataset
from data.files import atomic_save, atomic_write_bytes, atomic_write_json, read_json
from data.grid import make_grid, save_png
from data.imageset import ImageSet, from_tensor, to_tensor
from data.provenance import Provenance, fingerprints
from data.synthetic import load_set, save_set, to_folder_zip
from gans.singan import load_image, resize
from gans.singan_train import SinGanConfig, build_model, train
from lab.engine.children import create_children, run_children
from lab.provenance_check import record_fingerprints
from lab.engine.runs import Run
from metrics.inception import SIFID_FEATURE_SPACE, InceptionUnavailable, sifid

REAL_PAIRS = 200  # random pairs of real images behind `real_pairs`


CONFIG = SinGanConfig


def run(run: Run) -> None:
    config = SinGanConfig.from_dict(run.settings)
    torch.manual_seed(config.seed)
    if config.mode == "image":
        train_image(run, config)
    else:
        train_seeds(run, config)


# --- one image ----------------------------------------------------------------------------------

def train_image(run: Run, config: SinGanConfig) -> None:
    image, label, same_class = source_image(config)
    model = build_model(image, config)
    seconds = train(model, run.hooks(), checkpoint_every=config.checkpoint_every, log_every=config.log_every)
    model.save(run.checkpoints / "singan.pt", training_state=False)
    variations = from_tensor(model.sample(config.variations, seed=config.seed, inject_stage=config.inject_stage,
                                          noise_scale=config.noise_scale))
    real = from_tensor(model.reals[-1].cpu())[0]
    save_image_variations(run, real, variations, label)
    atomic_write_json(run.artifacts / "summary.json", {
        "label": label, "train_seconds": round(seconds, 1), "sizes": model.sizes, "noise_amps": model.amps,
        "reconstruction_rmse": model.reconstruction_error(), "variations": len(variations),
        **image_figures(real, variations, same_class, config.sifid, config.device)})


def source_image(config: Config) -> tuple[np.ndarray, str, np.ndarray | None]:
    """The image of an image-mode config (uint8 H×W×C), a label for it (the file name or the
    image's class) and, for a dataset image, the training images of its class (else None)."""
    if config.image_path:
        return load_image(config.image_path), Path(config.image_path).stem, None
    train_split = load_dataset(config.dataset).train
    if not 0 <= config.image_index < len(train_split):
        raise ValueError(f"image_index {config.image_index} is outside the training split (0..{len(train_split) - 1})")
    index = config.image_index
    return (train_split.images[index], train_split.class_names[train_split.labels[index]],
            same_class(train_split, index))


def save_image_variations(run: Run, real: np.ndarray, variations: np.ndarray, label: str) -> None:
    """`artifacts/variations.npz` (images, label) and `variations.png` (the real image framed, then the variations)."""
    atomic_save(run.artifacts / "variations.npz",
                lambda tmp: np.savez_compressed(tmp, images=variations, label=np.array(label)))
    save_png(make_grid(np.concatenate([real[None], variations]), ncol=4, marked=[0]), run.artifacts / "variations.png")


# --- how much the variations vary ---------------------------------------------------------------

def diversity(image: np.ndarray, variations: np.ndarray, same_class: np.ndarray | None, seed: int = 0
              ) -> dict[str, float | None]:
    """How far the variations are from their image and from each other, next to real images.

    image: uint8 H×W×C; variations: uint8 N×H×W×C; same_class: uint8 M×h×w×C real images of the
    image's class (its dataset's training split), or None. Distances are mean absolute pixel
    differences in /255 units (0: identical; a copy of the image scores 0 to it):
    - to_image: variation to the image, averaged over the variations;
    - between: variation to variation, averaged over all pairs (None with one variation);
    - real_pairs: between two distinct real images of the class, over `REAL_PAIRS` random pairs
      drawn with `seed` (None without them): what "a different image" means in this dataset;
    - pixel_std: the SinGAN paper's diversity, the std across the variations of each pixel,
      averaged over pixels, divided by the std of the image's pixels (None with one variation).
    """
    image, variations = image.astype(np.float64), variations.astype(np.float64)
    n = len(variations)
    to_image = np.abs(variations - image).mean()
    between = pixel_std = None
    if n > 1:
        first, second = np.triu_indices(n, 1)
        between = np.mean([np.abs(variations[i] - variations[j]).mean() for i, j in zip(first, second)])
        pixel_std = variations.std(0).mean() / max(image.std(), 1e-8)
    real_pairs = None
    if same_class is not None and len(same_class) > 1:
        a, b = np.random.default_rng(seed).integers(len(same_class), size=(2, REAL_PAIRS))
        distinct = a != b
        real_pairs = np.abs(same_class[a[distinct]].astype(np.float64) - same_class[b[distinct]]).mean()
    return {"to_image": _rounded(to_image), "between": _rounded(between), "real_pairs": _rounded(real_pairs),
            "pixel_std": _rounded(pixel_std)}


def _rounded(value) -> float | None:
    return None if value is None else round(float(value), 3)


def image_figures(image: np.ndarray, variations: np.ndarray, same_class: np.ndarray | None, with_sifid: bool,
                  device: str = "auto") -> dict:
    """The summary.json figures of an image-mode run: "diversity" (`diversity`) and, `with_sifid`,
    "sifid" (mean SIFID of the variations against the image, ↓; None with "sifid_error" where the
    Inception weights are missing) with its feature space. Images as in `diversity`."""
    figures = {"diversity": diversity(image, variations, same_class)}
    if with_sifid:
        try:
            figures["sifid"] = round(sifid(image, variations, device=device), 4)
        except InceptionUnavailable as e:
            figures.update(sifid=None, sifid_error=str(e))
        figures["sifid_feature_space"] = SIFID_FEATURE_SPACE
    return figures


def seeds_figures(train_split: ImageSet, seeds: list[int], variations: list[np.ndarray]) -> dict:
    """A seeds run's figures at the working size: "diversity" (each figure of `diversity` averaged
    over the seeds) and "diversity_per_seed"."""
    per_seed = [diversity(train_split.images[index], images, same_class(train_split, index))
                for index, images in zip(seeds, variations)]
    means = {name: _rounded(None if None in values else np.mean(values))
             for name, values in ((name, [d[name] for d in per_seed]) for name in per_seed[0])}
    return {"diversity": means, "diversity_per_seed": per_seed}


def same_class(train_split: ImageSet, index: int) -> np.ndarray:
    """The training images of the class of image `index`."""
    return train_split.images[train_split.labels == train_split.labels[index]]


def figures_text(summary: dict) -> str:
    """The figures of a single-image run's summary.json in one line of words (the CLI's and the page's)."""
    d = summary.get("diversity") or {}
    parts = []
    if summary.get("sifid") is not None:
        parts.append(f"SIFID {summary['sifid']:.3g} (↓)")
    elif summary.get("sifid_error"):
        parts.append(f"SIFID left out: {summary['sifid_error']}")
    if d.get("to_image") is not None:
        text = f"variations differ from their image by {d['to_image']:.1f}/255"
        if d.get("between") is not None:
            text += f" and from each other by {d['between']:.1f}/255"
        if d.get("real_pairs") is not None:
            text += f"; two real images of the class differ by {d['real_pairs']:.1f}/255"
        parts.append(text)
    if d.get("pixel_std") is not None:
        parts.append(f"SinGAN's diversity (pixel std across variations / the image's) {d['pixel_std']:.2f}")
    return " · ".join(parts)


# --- seeds per class ----------------------------------------------------------------------------

def train_seeds(run: Run, config: SinGanConfig) -> None:
    """Queue one image-mode "singan" run per seed (lab/engine/children.py), then collect their variations."""
    spec = config.dataset
    train_split = load_dataset(spec).train
    seeds = seed_images(run, config, train_split)
    plan = {f"seed{position:03d}": (f"{spec.name}-seed{position:03d}", seed_config(config, index, position))
            for position, index in enumerate(seeds)}
    children = create_children(run, "singan", plan)
    run_children(run, children, config.model.total_steps,
                 describe=lambda key: f"seed {int(key[4:]) + 1}/{len(seeds)}")

    variations = [read_child_variations(child, spec.size, train_split.channels) for child in children.values()]
    train_seconds = sum(read_json(c.artifacts / "summary.json", {}).get("train_seconds", 0) for c in children.values())
    save_seeds_set(run, "singan", config, train_split, seeds, variations, train_seconds=round(train_seconds, 1),
                   seed_runs=[c.id for c in children.values()])


def seed_images(run: Run, config: Config, train_split: ImageSet) -> list[int]:
    """A seeds-mode config's training indices (`seed_indices`, else `choose_seeds`), checked and kept in seeds.json,
    their images' fingerprints recorded in the run (`lab.provenance_check.record_fingerprints`)."""
    seeds = list(config.seed_indices) or choose_seeds(train_split, config.seeds_per_class, config.seed)
    bad = [i for i in seeds if not 0 <= i < len(train_split)]
    if bad:
        raise ValueError(f"seed indices outside the training split (0..{len(train_split) - 1}): {bad}")
    atomic_write_json(run.artifacts / "seeds.json", {"indices": seeds, "labels": train_split.labels[seeds].tolist()})
    record_fingerprints(run, fingerprints(train_split.images[seeds]))
    return seeds


def choose_seeds(train_split: ImageSet, per_class: int, seed: int) -> list[int]:
    """`per_class` random training indices of every class (fewer if a class is smaller)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(train_split.num_classes):
        members = np.flatnonzero(train_split.labels == label)
        chosen += sorted(rng.choice(members, size=min(per_class, len(members)), replace=False).tolist())
    return chosen


def seed_config(config: SinGanConfig, index: int, position: int) -> dict:
    """The image-mode config of one seed's run: the seeds run's settings, a seed of its own, no SIFID
    (the seeds run reports the diversity of all its seeds instead)."""
    return config.replace(mode="image", image_index=int(index), seed=config.seed + position, seed_indices=[],
                          seeds_per_class=0, sifid=False).to_dict()


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


def save_seeds_set(run: Run, generator: str, config: Config, train_split: ImageSet, seeds: list[int],
                   variations: list[np.ndarray], **meta) -> None:
    """Register a seeds run's variations (one uint8 array at the working size per seed) as the labelled
    synthetic set `<generator>_variations` (.npz + .json + image-folder .zip) whose provenance is the
    seed images; draw `samples/seeds.png` (each seed framed, then its variations) and write summary.json."""
    spec: DatasetSpec = config.dataset
    name = f"{generator}_variations"
    labels = np.concatenate([np.full(len(v), train_split.labels[index]) for v, index in zip(variations, seeds)])
    synthetic = ImageSet(np.concatenate(variations), labels, train_split.class_names,
                         split="synthetic", source=f"{generator}@{spec.name}")
    trained_on = fingerprints(train_split.images[seeds])
    provenance = Provenance.trained(trained_on, dataset=spec, split="train", train_fraction=1.0,
                                    subset_seed=config.seed, generator=generator, run_id=run.id,
                                    config=config.to_dict())
    save_set(synthetic, run.artifacts, name, provenance, trained_on, generator=generator, run_id=run.id,
             dataset=spec.to_dict(), seeds=seeds, variations_per_seed=config.variations, preset=config.preset, **meta)
    atomic_write_bytes(run.artifacts / f"{name}.zip", to_folder_zip(synthetic))
    reals = train_split.images[seeds]
    rows = [np.concatenate([reals[i:i + 1], v[:7]]) for i, v in enumerate(variations)]
    ncol = 1 + min(7, config.variations)
    save_png(make_grid(np.concatenate(rows), ncol=ncol, marked=range(0, len(rows) * ncol, ncol)),  # the real seeds
             run.samples / "seeds.png")
    atomic_write_json(run.artifacts / "summary.json", {"seeds": len(seeds), "variations": len(synthetic),
                                                       **meta, **seeds_figures(train_split, seeds, variations)})
    run.log_event(type="synthetic_set", path=str(run.artifacts / f"{name}.npz"), count=len(synthetic))


# --- reading results ----------------------------------------------------------------------------

def load_variations(run: Run) -> ImageSet:
    """A finished single-image run's variations as an ImageSet: its synthetic set (seeds mode) or variations.npz."""
    if run.config.get("mode") == "seeds":
        return load_set(run.artifacts / f"{run.kind}_variations.npz")
    with np.load(run.artifacts / "variations.npz", allow_pickle=False) as f:
        images, label = f["images"], str(f["label"])
    return ImageSet(images, np.zeros(len(images), np.int64), [label], split="synthetic", source=run.kind)
