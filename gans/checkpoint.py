"""Saving and loading GAN weights, including checkpoints a user uploads.

Two kinds of file, both plain `torch.save` dicts of tensors, numbers and strings that load
with `weights_only=True` (never an arbitrary unpickle):
- `last.pt` (training state for resume): config, step, seconds, models, optimizers, RNG;
- `generator.pt` (the finished generator): format tag, config, data shape and class names,
  generator weights. This is what the Samples page opens or accepts as an upload.

An uploaded generator is untrusted: it is checked against the architecture its own stored
config describes (every key, every shape) before any weight is loaded.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from data.files import atomic_save
from gans.config import GanConfig, build_gan

GENERATOR_FORMAT = "gan-lab-generator/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the reason."""


def save_atomic(obj: dict, path: Path) -> Path:
    return atomic_save(path, lambda tmp: torch.save(obj, tmp))


def load_trusted(path: Path, device="cpu") -> dict:
    """A checkpoint this lab wrote (resume); still loaded with weights_only=True."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a torn or foreign file: say which one
        raise CheckpointError(f"{path}: cannot resume from this checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})") from None


def save_generator(gan, config: GanConfig, class_names: list[str], path: Path) -> Path:
    return save_atomic({
        "format": GENERATOR_FORMAT,
        "config": config.to_dict(),
        "data": {"image_size": gan.image_size, "channels": gan.channels, "num_classes": gan.num_classes,
                 "class_names": list(class_names)},
        "generator": gan.generator.state_dict(),
    }, path)


def load_generator(source: str | Path | bytes, name: str = "", device="cpu"):
    """(GAN, config, class_names) from a generator file path or uploaded bytes.

    Raises CheckpointError with a message naming the file for anything that is not a
    generator this lab can rebuild exactly: not a torch file, pickled objects, missing
    fields, an unknown GAN, or weights whose keys or shapes differ from the architecture.
    """
    name = name or (Path(source).name if not isinstance(source, bytes) else "uploaded checkpoint")
    try:
        blob = torch.load(io.BytesIO(source) if isinstance(source, bytes) else source,
                          map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to parse means the file is unusable
        raise CheckpointError(f"{name}: not a loadable weights-only PyTorch checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})") from None
    if not isinstance(blob, dict) or blob.get("format") != GENERATOR_FORMAT:
        raise CheckpointError(f"{name}: not a generator checkpoint of this lab (expected format "
                              f"'{GENERATOR_FORMAT}'; use checkpoints/generator.pt of a finished GAN run)")
    for key, kind in (("config", dict), ("data", dict), ("generator", dict)):
        if not isinstance(blob.get(key), kind):
            raise CheckpointError(f"{name}: field '{key}' is missing or malformed")
    data = blob["data"]
    try:
        config = GanConfig.from_dict(blob["config"])
        size, channels, classes = int(data["image_size"]), int(data["channels"]), int(data["num_classes"])
        class_names = [str(c) for c in data["class_names"]]
        if len(class_names) != classes or channels not in (1, 3) or classes < 1:
            raise ValueError(f"{classes} classes, {len(class_names)} class names, {channels} channels")
        gan = build_gan(config, size, channels, classes, device=device)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{name}: its stored config does not describe a GAN of this lab ({e})") from None
    check_state_matches(gan.generator.state_dict(), blob["generator"], name)
    gan.generator.load_state_dict(blob["generator"])
    return gan, config, class_names


def check_state_matches(expected: dict, given: dict, name: str) -> None:
    """Refuse weights whose keys, shapes, dtypes or values do not fit the expected model."""
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{name}: weights do not match the {len(expected)}-tensor architecture its config "
                              f"describes (missing: {', '.join(missing[:5]) or 'none'}; "
                              f"unexpected: {', '.join(extra[:5]) or 'none'})")
    for key, tensor in expected.items():
        value = given[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"{name}: '{key}' has shape {shape}, the architecture needs {tuple(tensor.shape)}")
        if value.dtype != tensor.dtype:
            raise CheckpointError(f"{name}: '{key}' is {value.dtype}, expected {tensor.dtype}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{name}: '{key}' holds NaN or infinite values")
